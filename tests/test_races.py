"""Races in the core, each reproduced through real servers on a real database.

- Concurrent retries of one CreateFlow all return the one flow their request id names.
- A cancel that races the last phase leaves master and child agreeing, and nothing parks.
- Approving moves a flow on by itself; ResumeFlow never waits for the approval's event.

Where a race needs one side held back, the discovery service's relay is stopped and its
outbox delivered by hand (``Relay.deliver_once``), so the window the race needs is opened on
purpose instead of hoped for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import ClassVar

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.domain.model import ChildFlow
from discovery_svc.phases import HANDLERS
from discovery_svc.phases.base import PhaseOutcome
from flowpair.internal.v1 import child_flow_service_pb2 as child_pb2
from flowpair.v1 import discovery_pb2, flow_pb2, orchestrator_pb2
from flowpair_shared import tasks
from flowpair_shared.domain import Phase
from flowpair_shared.outbox import Relay
from flowpair_shared.server import ServiceApp
from tests.support import (
    ROOT,
    Stack,
    approve_waiving_gaps,
    discovery_flow,
    eventually,
    fetchval,
    md,
    new_tenant,
    peer_md,
    with_relay,
)
from tests.test_phase_engine import all_events, flow_state, lifecycle_events, phase, wait_status

SAMPLE = (ROOT / "examples" / "cmdb_export.csv").read_bytes()
PARKED = "SELECT count(*) FROM messaging.outbox WHERE parked_at IS NOT NULL"


def relay_of(app: ServiceApp) -> Relay:
    for work in app.background:
        if isinstance(work, Relay):
            return work
    raise LookupError(f"{app.name} has no relay")


@contextlib.asynccontextmanager
async def held(relay: Relay) -> AsyncIterator[asyncio.Event]:
    """Stop ``relay``; its outbox is delivered by hand, round after round, once the event
    yielded is set (and until the block ends)."""
    await relay.stop()
    release = asyncio.Event()

    async def pump() -> None:
        await release.wait()
        while True:
            await relay.deliver_once()
            await asyncio.sleep(0.02)

    task = asyncio.create_task(pump())
    try:
        yield release
    finally:
        await tasks.cancelled(task)


async def child_state(stack: Stack, tenant: object, name: str) -> discovery_pb2.ChildFlow:
    r = await stack.discovery().GetChildFlow(
        discovery_pb2.GetChildFlowRequest(master_flow=name),
        metadata=md(tenant),  # type: ignore[arg-type]
    )
    return r.child_flow


async def settled(stack: Stack) -> bool:
    """Every outbox message delivered or parked."""
    pending = await fetchval(
        stack.database_url,
        "SELECT count(*) FROM messaging.outbox WHERE delivered_at IS NULL AND parked_at IS NULL",
    )
    return bool(pending == 0)


# -- 1. concurrent retries of one CreateFlow ----------------------------------------------


async def test_concurrent_retries_of_one_create_return_the_same_flow(stack: Stack) -> None:
    """8 simultaneous retries (one request id, ``allow_concurrent`` unset), in 10 engagements:
    each gets the flow its request created, never INCOMPLETE_FLOW_EXISTS naming it."""
    await stack.start_orchestrator()
    orch = stack.orchestrator()
    for _ in range(10):
        tenant, rid = new_tenant(), str(uuid.uuid4())
        request = orchestrator_pb2.CreateFlowRequest(
            flow=discovery_flow(display_name="retried", allow_concurrent=False), request_id=rid
        )
        results = await asyncio.gather(
            *(orch.CreateFlow(request, metadata=md(tenant)) for _ in range(8)),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, BaseException)]
        assert not refused, [str(r) for r in refused]
        assert len({r.flow.name for r in results if not isinstance(r, BaseException)}) == 1
    assert await fetchval(stack.database_url, "SELECT count(*) FROM orchestrator.flows") == 10
    assert await fetchval(stack.database_url, "SELECT count(*) FROM messaging.outbox") == 10
    # A different request in an engagement with an incomplete flow is still refused.
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await orch.CreateFlow(
            orchestrator_pb2.CreateFlowRequest(
                flow=discovery_flow(allow_concurrent=False), request_id=str(uuid.uuid4())
            ),
            metadata=md(tenant),
        )
    assert other.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "incomplete discovery flow" in (other.value.details() or "")


# -- 2. a cancel racing the last phase ----------------------------------------------------


class Gated:
    """A real phase handler, started only once the test opens the gate."""

    phase: ClassVar[Phase]
    timeout: ClassVar[float] = 600.0

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def run(self, child: ChildFlow, conn: AsyncConnection) -> PhaseOutcome:
        await self.gate.wait()
        return await HANDLERS[self.phase].run(child, conn)


class GatedDependencies(Gated):
    phase: ClassVar[Phase] = Phase.DEPENDENCY_ANALYSIS


class GatedMapping(Gated):
    phase: ClassVar[Phase] = Phase.ATTRIBUTE_MAPPING


async def test_cancel_racing_the_last_phase_leaves_master_and_child_agreeing(
    stack: Stack,
) -> None:
    """The child completes its last phase; before the master hears of it, a person cancels
    the master. The orchestrator's cancel is authoritative: the child becomes CANCELLED too
    (its inventory stays), the late COMPLETED event does not revive the master, and the
    CancelChildFlow command is delivered, not parked."""
    with_relay(stack, max_rejections=3)  # a rejected command parks within a second or two
    gated = GatedDependencies()
    await stack.start_orchestrator()
    discovery = await stack.start_discovery(handlers={**HANDLERS, gated.phase: gated})
    tenant = new_tenant()
    name, _ = await stack.start_flow(tenant, SAMPLE, auto_approve=True)

    async def last_phase_running() -> bool:
        f = await flow_state(stack, tenant, name)
        return phase(f, flow_pb2.PHASE_DEPENDENCY_ANALYSIS).status == (
            flow_pb2.PHASE_STATUS_RUNNING
        )

    await eventually(last_phase_running, timeout=60)
    async with held(relay_of(discovery)) as deliver:
        gated.gate.set()

        async def child_completed() -> bool:
            child = await child_state(stack, tenant, name)
            return child.status == flow_pb2.FLOW_STATUS_COMPLETED

        await eventually(child_completed, timeout=60)
        cancelled = (
            await stack.orchestrator().CancelFlow(
                orchestrator_pb2.CancelFlowRequest(name=name, reason="raced the last phase"),
                metadata=md(tenant),
            )
        ).flow
        assert cancelled.status == flow_pb2.FLOW_STATUS_CANCELLED
        deliver.set()  # the child's COMPLETED event now reaches the cancelled master
        await eventually(lambda: settled(stack), timeout=30)

    assert await fetchval(stack.database_url, PARKED) == 0
    master = await flow_state(stack, tenant, name)
    child = await child_state(stack, tenant, name)
    assert master.status == child.status == flow_pb2.FLOW_STATUS_CANCELLED
    # The master recorded the late event without changing its own status.
    assert phase(master, flow_pb2.PHASE_DEPENDENCY_ANALYSIS).status == (
        flow_pb2.PHASE_STATUS_COMPLETED
    )
    assert [e.flow_status for e in await all_events(stack, tenant, name)][-1] == (
        flow_pb2.FLOW_STATUS_CANCELLED
    )
    # The inventory the child built stays.
    assert await fetchval(stack.database_url, "SELECT count(*) FROM discovery.assets") > 0
    # A cancel delivered again (a new message id: not an inbox duplicate) to the cancelled
    # child is a no-op success; the master refuses a second cancel of its own.
    await stack.child_flows().CancelChildFlow(
        child_pb2.CancelChildFlowRequest(master_flow=name),
        metadata=(*peer_md(tenant), ("x-message-id", str(uuid.uuid4()))),
    )
    assert (await child_state(stack, tenant, name)).status == flow_pb2.FLOW_STATUS_CANCELLED
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await stack.orchestrator().CancelFlow(
            orchestrator_pb2.CancelFlowRequest(name=name), metadata=md(tenant)
        )
    assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION


# -- 3. approval moves the flow on; ResumeFlow never waits --------------------------------


async def test_approval_moves_the_flow_on_and_resume_never_waits(stack: Stack) -> None:
    await stack.start_orchestrator()
    discovery = await stack.start_discovery()
    tenant = new_tenant()
    orch = stack.orchestrator()
    name, _ = await stack.start_flow(tenant, SAMPLE)
    await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_WAITING_FOR_APPROVAL, 60)

    # Not approved: refused at once.
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await orch.ResumeFlow(orchestrator_pb2.ResumeFlowRequest(name=name), metadata=md(tenant))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert time.monotonic() - started < 1.0

    listed = await stack.discovery().ListFieldMappings(
        discovery_pb2.ListFieldMappingsRequest(master_flow=name), metadata=md(tenant)
    )
    async with held(relay_of(discovery)) as deliver:
        await approve_waiving_gaps(stack, tenant, name, listed)
        # The approval's event is still in discovery's outbox: a resume does not wait for it.
        started = time.monotonic()
        resumed = (
            await orch.ResumeFlow(
                orchestrator_pb2.ResumeFlowRequest(name=name), metadata=md(tenant), timeout=5
            )
        ).flow
        assert time.monotonic() - started < 1.0
        assert resumed.status == flow_pb2.FLOW_STATUS_WAITING_FOR_APPROVAL
        await stack.runner().stop()  # hold DATA_CLEANSING, so the flow is seen running
        deliver.set()
        # No ResumeFlow: the approval alone moves the flow on.
        running = await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_RUNNING)
        assert phase(running, flow_pb2.PHASE_ATTRIBUTE_MAPPING).status == (
            flow_pb2.PHASE_STATUS_COMPLETED
        )
        # A resume of the running flow is a no-op success and records nothing.
        again = (
            await orch.ResumeFlow(
                orchestrator_pb2.ResumeFlowRequest(name=name, reason="mapping reviewed"),
                metadata=md(tenant),
                timeout=5,
            )
        ).flow
        assert again.status == flow_pb2.FLOW_STATUS_RUNNING
        assert again.history_sequence >= running.history_sequence
        stack.runner().start()
        await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_COMPLETED, 120)
    # Approved and resumed, yet no RESUMED entry: the resume changed nothing.
    assert await lifecycle_events(stack, tenant, name) == [(flow_pb2.FLOW_EVENT_KIND_CREATED, "")]
    assert await fetchval(stack.database_url, PARKED) == 0


async def test_approval_does_not_move_on_a_flow_a_person_paused(stack: Stack) -> None:
    """Paused while ATTRIBUTE_MAPPING runs, the flow stays PAUSED at the gate and after the
    approval; only ResumeFlow continues it."""
    gated = GatedMapping()
    await stack.start_orchestrator()
    await stack.start_discovery(handlers={**HANDLERS, gated.phase: gated})
    tenant = new_tenant()
    orch = stack.orchestrator()
    name, _ = await stack.start_flow(tenant, SAMPLE)

    async def in_phase(status: int) -> bool:
        f = await flow_state(stack, tenant, name)
        return phase(f, flow_pb2.PHASE_ATTRIBUTE_MAPPING).status == status

    await eventually(lambda: in_phase(flow_pb2.PHASE_STATUS_RUNNING), timeout=60)
    await orch.PauseFlow(
        orchestrator_pb2.PauseFlowRequest(name=name, reason="hold"), metadata=md(tenant)
    )
    gated.gate.set()
    await eventually(lambda: in_phase(flow_pb2.PHASE_STATUS_WAITING_FOR_APPROVAL), timeout=60)
    assert (await flow_state(stack, tenant, name)).status == flow_pb2.FLOW_STATUS_PAUSED

    listed = await stack.discovery().ListFieldMappings(
        discovery_pb2.ListFieldMappingsRequest(master_flow=name), metadata=md(tenant)
    )
    await approve_waiving_gaps(stack, tenant, name, listed)
    await eventually(lambda: in_phase(flow_pb2.PHASE_STATUS_COMPLETED))
    paused = await flow_state(stack, tenant, name)
    assert paused.status == flow_pb2.FLOW_STATUS_PAUSED
    assert paused.paused_by == str(tenant.user_id)
    assert phase(paused, flow_pb2.PHASE_DATA_CLEANSING).status == flow_pb2.PHASE_STATUS_PENDING

    resumed = (
        await orch.ResumeFlow(orchestrator_pb2.ResumeFlowRequest(name=name), metadata=md(tenant))
    ).flow
    assert resumed.status == flow_pb2.FLOW_STATUS_RUNNING
    await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_COMPLETED, 120)
    assert await lifecycle_events(stack, tenant, name) == [
        (flow_pb2.FLOW_EVENT_KIND_CREATED, ""),
        (flow_pb2.FLOW_EVENT_KIND_PAUSED, "hold"),
        (flow_pb2.FLOW_EVENT_KIND_RESUMED, ""),
    ]
