"""A locked read of a flow that waited for another transaction sees that transaction's phases.

In READ COMMITTED, ``SELECT … FOR UPDATE`` that waits returns the locked row as committed by
the transaction it waited for, but evaluates the rest of its statement in the snapshot taken
before the wait. A flow read with its phases in that one statement came back with the new flow
row and the old phases; the apply that followed wrote the old phase statuses back (a chaos run
ended with master and child disagreeing on a phase). Both repositories now lock, then read.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from discovery_svc.adapters import repository as discovery_repository
from discovery_svc.domain.model import ChildFlow
from flowpair.v1 import orchestrator_pb2
from flowpair_shared import db_scope
from flowpair_shared.db import app_role_url, asyncpg_dsn, create_engine
from flowpair_shared.domain import Phase
from flowpair_shared.tenancy import Tenant
from orchestrator_svc.adapters import repository as orchestrator_repository
from orchestrator_svc.domain.model import MasterFlow
from tests.support import Stack, discovery_flow, eventually, fetchval, md, new_tenant


async def _read_after_a_concurrent_commit(
    stack: Stack,
    tenant: Tenant,
    lock_sql: str,
    change_sql: str,
    key: uuid.UUID,
    read: Callable[..., Awaitable[object]],
) -> object:
    """Hold the row's lock in a transaction that changes a phase; start ``read`` (which locks
    the row, so it waits); commit; return what ``read`` saw."""
    owner = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    engine = create_engine(app_role_url(stack.database_url), pool_size=2)
    try:
        holder = owner.transaction()
        await holder.start()
        await owner.execute(lock_sql, key)
        await owner.execute(change_sql, key)

        async def locked_read() -> object:
            with db_scope.tenant(tenant):
                async with engine.begin() as conn:
                    return await read(conn)

        reading = asyncio.create_task(locked_read())
        await eventually(
            lambda: fetchval(
                stack.database_url,
                "SELECT count(*) > 0 FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%'",
            )
        )
        await holder.commit()
        return await reading
    finally:
        await owner.close()
        await engine.dispose()


async def test_locked_reads_see_phases_committed_while_they_waited(stack: Stack) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    created = await stack.orchestrator().CreateFlow(
        orchestrator_pb2.CreateFlowRequest(flow=discovery_flow()), metadata=md(tenant)
    )
    flow_id = uuid.UUID(created.flow.name.split("/")[1])

    async def child_id() -> uuid.UUID | None:
        found: uuid.UUID | None = await fetchval(
            stack.database_url,
            "SELECT id FROM discovery.child_flows WHERE master_flow_id = $1",
            flow_id,
        )
        return found

    child = await eventually(child_id)
    assert child is not None
    # A status no path of the flow writes by itself, so only the concurrent commit explains it.
    marker = "locked-read-test"

    master = await _read_after_a_concurrent_commit(
        stack,
        tenant,
        "SELECT 1 FROM orchestrator.flows WHERE id = $1 FOR UPDATE",
        "UPDATE orchestrator.flow_phases"
        " SET error_reason = 'LOCKED_READ_TEST', error_message = 'locked-read-test'"
        f" WHERE flow_id = $1 AND phase = {int(Phase.DATA_CLEANSING)}",
        flow_id,
        lambda conn: orchestrator_repository.get(conn, tenant, flow_id, lock=True),
    )
    assert isinstance(master, MasterFlow)
    error = master.phases[Phase.DATA_CLEANSING].error
    assert error is not None and error.message == marker

    found = await _read_after_a_concurrent_commit(
        stack,
        tenant,
        "SELECT 1 FROM discovery.child_flows WHERE id = $1 FOR UPDATE",
        "UPDATE discovery.child_phases"
        " SET error_reason = 'LOCKED_READ_TEST', error_message = 'locked-read-test'"
        f" WHERE child_flow_id = $1 AND phase = {int(Phase.DATA_CLEANSING)}",
        child,
        lambda conn: discovery_repository.get_for_job(conn, child, lock=True),
    )
    assert isinstance(found, ChildFlow)
    failure = found.phase_errors.get(Phase.DATA_CLEANSING)
    assert failure is not None and failure.message == marker
