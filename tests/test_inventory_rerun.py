"""Re-running a phase replaces its output: no duplicated rows, assets or dependencies.

Three ways a phase runs again: RetryPhase after a failure, the handlers run a second time on
a finished flow (what a redelivered or taken-over job amounts to), and a second flow on the
same data in the same engagement.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.adapters import repository
from discovery_svc.domain.model import ChildFlow
from discovery_svc.phases import HANDLERS
from discovery_svc.phases.base import PhaseFailed, PhaseOutcome
from flowpair.v1 import flow_pb2, orchestrator_pb2
from flowpair_shared import db_scope
from flowpair_shared.db import app_role_url, create_engine
from flowpair_shared.domain import Phase
from flowpair_shared.tenancy import Tenant
from tests.support import ROOT, Stack, fetch, fetchval, md, new_tenant
from tests.test_phase_engine import wait_status

SAMPLE = (ROOT / "examples" / "cmdb_export.csv").read_bytes()
RERUN = (Phase.DATA_CLEANSING, Phase.ASSET_INVENTORY, Phase.DEPENDENCY_ANALYSIS)


class FailsOnceAfterWorking:
    """The real DEPENDENCY_ANALYSIS, which then fails its first run (its output rolls back)."""

    phase: ClassVar[Phase] = Phase.DEPENDENCY_ANALYSIS
    timeout: ClassVar[float] = 600.0

    def __init__(self) -> None:
        self.runs = 0

    async def run(self, child: ChildFlow, conn: AsyncConnection) -> PhaseOutcome:
        outcome = await HANDLERS[self.phase].run(child, conn)
        self.runs += 1
        if self.runs == 1:
            raise PhaseFailed("INJECTED", f"{self.phase.name} failed after doing its work")
        return outcome


async def run_flow(stack: Stack, tenant: Tenant) -> str:
    uploaded = await stack.upload(tenant, SAMPLE)
    flow = orchestrator_pb2.Flow(
        type=flow_pb2.FLOW_TYPE_DISCOVERY, auto_approve=True, allow_concurrent=True
    )
    flow.data_import = uploaded.name
    created = await stack.orchestrator().CreateFlow(
        orchestrator_pb2.CreateFlowRequest(flow=flow), metadata=md(tenant)
    )
    return created.flow.name


async def counts(database_url: str, tenant: Tenant, master: str) -> dict[str, int]:
    child = await fetchval(
        database_url,
        "SELECT id FROM discovery.child_flows WHERE master_flow_id = $1",
        uuid.UUID(master.split("/")[1]),
    )
    per_child = {
        table: await fetchval(
            database_url, f"SELECT count(*) FROM discovery.{table} WHERE child_flow_id = $1", child
        )
        for table in ("cleansed_records", "cleansing_issues", "asset_sources", "dependencies")
    }
    per_engagement = {
        table: await fetchval(
            database_url,
            f"SELECT count(*) FROM discovery.{table}"
            " WHERE client_account_id = $1 AND engagement_id = $2",
            tenant.client_account_id,
            tenant.engagement_id,
        )
        for table in ("assets", "dependencies")
    }
    return {**per_child, **{f"engagement {k}": v for k, v in per_engagement.items()}}


async def asset_ids(database_url: str, tenant: Tenant) -> set[uuid.UUID]:
    rows = await fetch(
        database_url,
        "SELECT id FROM discovery.assets WHERE client_account_id = $1 AND engagement_id = $2",
        tenant.client_account_id,
        tenant.engagement_id,
    )
    return {r[0] for r in rows}


async def test_retry_after_a_failure_gives_the_same_inventory_as_a_clean_run(
    stack: Stack,
) -> None:
    failing = FailsOnceAfterWorking()
    await stack.start_orchestrator()
    await stack.start_discovery({**HANDLERS, Phase.DEPENDENCY_ANALYSIS: failing})
    orch = stack.orchestrator()

    clean_tenant, retried_tenant = new_tenant(), new_tenant()
    failing.runs = 1  # the first flow runs cleanly
    clean = await run_flow(stack, clean_tenant)
    await wait_status(stack, clean_tenant, clean, flow_pb2.FLOW_STATUS_COMPLETED, timeout=120)
    failing.runs = 0
    retried = await run_flow(stack, retried_tenant)
    failed = await wait_status(stack, retried_tenant, retried, flow_pb2.FLOW_STATUS_FAILED)
    assert failed.current_phase == flow_pb2.PHASE_DEPENDENCY_ANALYSIS
    assert (
        await fetchval(
            stack.database_url,
            "SELECT count(*) FROM discovery.dependencies WHERE engagement_id = $1",
            retried_tenant.engagement_id,
        )
        == 0
    )

    for phase in (flow_pb2.PHASE_DEPENDENCY_ANALYSIS,):
        await orch.RetryPhase(
            orchestrator_pb2.RetryPhaseRequest(name=retried, phase=phase, reason="test"),
            metadata=md(retried_tenant),
        )
    await wait_status(stack, retried_tenant, retried, flow_pb2.FLOW_STATUS_COMPLETED, timeout=120)
    expected = await counts(stack.database_url, clean_tenant, clean)
    assert expected["engagement assets"] > 200 and expected["dependencies"] > 50
    assert await counts(stack.database_url, retried_tenant, retried) == expected


async def test_handlers_run_again_replace_their_output(stack: Stack) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    name = await run_flow(stack, tenant)
    await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_COMPLETED, timeout=120)
    before = await counts(stack.database_url, tenant, name)
    ids = await asset_ids(stack.database_url, tenant)

    engine = create_engine(app_role_url(stack.database_url), pool_size=2)
    try:
        for _ in range(2):
            # As the phase runner runs a handler: in the flow's tenant.
            with db_scope.tenant(tenant):
                async with engine.begin() as conn:
                    child_id = await conn.scalar(
                        text("SELECT id FROM discovery.child_flows WHERE master_flow_id = :master"),
                        {"master": uuid.UUID(name.split("/")[1])},
                    )
                    child = await repository.get_for_job(conn, child_id, lock=True)
                    assert child is not None
                    for phase in RERUN:
                        await HANDLERS[phase].run(child, conn)
    finally:
        await engine.dispose()

    assert await counts(stack.database_url, tenant, name) == before
    assert await asset_ids(stack.database_url, tenant) == ids


async def test_a_second_flow_on_the_same_data_adds_no_assets(stack: Stack) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    first = await run_flow(stack, tenant)
    await wait_status(stack, tenant, first, flow_pb2.FLOW_STATUS_COMPLETED, timeout=120)
    ids = await asset_ids(stack.database_url, tenant)
    engagement_deps = (await counts(stack.database_url, tenant, first))["engagement dependencies"]

    second = await run_flow(stack, tenant)
    await wait_status(stack, tenant, second, flow_pb2.FLOW_STATUS_COMPLETED, timeout=120)
    assert await asset_ids(stack.database_url, tenant) == ids
    after = await counts(stack.database_url, tenant, second)
    assert after["engagement dependencies"] == engagement_deps
    # Both flows link every row to its assets.
    assert (
        after["asset_sources"] == (await counts(stack.database_url, tenant, first))["asset_sources"]
    )
