"""Atomic creation of master + child flows, end to end through real servers."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from flowpair.internal.v1 import child_flow_service_pb2 as child_pb2
from flowpair.internal.v1 import flow_event_service_pb2 as events_pb2
from flowpair.v1 import discovery_pb2, flow_pb2, orchestrator_pb2
from flowpair_shared.tenancy import Tenant
from tests.support import (
    Stack,
    discovery_flow,
    eventually,
    fetch,
    fetchval,
    md,
    new_tenant,
    peer_md,
)
from tests.test_phase_engine import flow_state, inventory, phase, wait_status

DISCOVERY = flow_pb2.FLOW_TYPE_DISCOVERY


def create_request(
    request_id: str = "", name: str = "inventory"
) -> orchestrator_pb2.CreateFlowRequest:
    return orchestrator_pb2.CreateFlowRequest(
        flow=discovery_flow(display_name=name), request_id=request_id
    )


async def test_create_flow_links_child_and_completes_initialization(stack: Stack) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    orch, disc = stack.orchestrator(), stack.discovery()

    created = (await orch.CreateFlow(create_request(), metadata=md(tenant))).flow
    assert created.status == flow_pb2.FLOW_STATUS_INITIALIZING
    assert created.name.startswith("flows/")
    assert len(created.phases) == 7

    async def linked() -> orchestrator_pb2.Flow | None:
        flow = (
            await orch.GetFlow(
                orchestrator_pb2.GetFlowRequest(name=created.name), metadata=md(tenant)
            )
        ).flow
        return flow if flow.child_flow else None

    flow = await eventually(linked)
    assert flow is not None
    assert flow.phases[0].phase == flow_pb2.PHASE_INITIALIZATION
    assert flow.phases[0].status == flow_pb2.PHASE_STATUS_COMPLETED
    # The flow moves on by itself (to DATA_IMPORT, which fails: nothing was uploaded).
    assert flow.status in (flow_pb2.FLOW_STATUS_RUNNING, flow_pb2.FLOW_STATUS_FAILED)
    assert all(p.status == flow_pb2.PHASE_STATUS_PENDING for p in flow.phases[2:])
    assert flow.child_event_sequence >= 1 and flow.history_sequence >= 2

    child = (
        await disc.GetChildFlow(
            discovery_pb2.GetChildFlowRequest(name=flow.child_flow), metadata=md(tenant)
        )
    ).child_flow
    assert child.master_flow == created.name
    assert child.phases[0].status == flow_pb2.PHASE_STATUS_COMPLETED
    by_master = (
        await disc.GetChildFlow(
            discovery_pb2.GetChildFlowRequest(master_flow=created.name), metadata=md(tenant)
        )
    ).child_flow
    assert by_master.name == child.name


async def test_discovery_down_then_up_creates_every_child_exactly_once(stack: Stack) -> None:
    await stack.start_orchestrator()
    tenant = new_tenant()
    orch = stack.orchestrator()
    names = [
        (await orch.CreateFlow(create_request(name=f"f{i}"), metadata=md(tenant))).flow.name
        for i in range(50)
    ]
    await asyncio.sleep(0.5)  # the relay tries and fails while discovery is down
    pending = await fetchval(
        stack.database_url,
        "SELECT count(*) FROM messaging.outbox WHERE source = 'orchestrator'"
        " AND delivered_at IS NULL AND parked_at IS NULL",
    )
    assert pending == 50
    assert await fetchval(stack.database_url, "SELECT count(*) FROM discovery.child_flows") == 0

    await stack.start_discovery()

    async def all_linked() -> bool:
        n = await fetchval(
            stack.database_url,
            "SELECT count(*) FROM orchestrator.flows WHERE child_flow_id IS NOT NULL",
        )
        return bool(n == 50)

    await eventually(all_linked)
    rows = await fetch(
        stack.database_url,
        "SELECT f.id, count(c.id) AS children FROM orchestrator.flows f"
        " LEFT JOIN discovery.child_flows c ON c.master_flow_id = f.id GROUP BY f.id",
    )
    assert len(rows) == 50
    assert {r["children"] for r in rows} == {1}
    assert {f"flows/{r['id']}" for r in rows} == set(names)


async def test_same_request_id_returns_the_same_flow(stack: Stack) -> None:
    await stack.start_orchestrator()
    tenant, other = new_tenant(), new_tenant()
    orch = stack.orchestrator()
    rid = str(uuid.uuid4())
    first = (await orch.CreateFlow(create_request(rid), metadata=md(tenant))).flow
    again = (await orch.CreateFlow(create_request(rid), metadata=md(tenant))).flow
    assert again.name == first.name
    # Concurrent retries race on the unique key: still one flow.
    rid2 = str(uuid.uuid4())
    racing = await asyncio.gather(
        *(orch.CreateFlow(create_request(rid2), metadata=md(tenant)) for _ in range(10))
    )
    assert len({r.flow.name for r in racing}) == 1
    # Request ids are scoped to the tenant: another tenant gets its own flow.
    theirs = (await orch.CreateFlow(create_request(rid), metadata=md(other))).flow
    assert theirs.name != first.name
    assert await fetchval(stack.database_url, "SELECT count(*) FROM orchestrator.flows") == 3
    assert await fetchval(stack.database_url, "SELECT count(*) FROM messaging.outbox") == 3


async def test_redelivered_command_and_event_apply_once(stack: Stack) -> None:
    """The relay's at-least-once delivery, replayed by hand with the same message ids."""
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    disc, events = stack.child_flows(), stack.flow_events()
    master = f"flows/{uuid.uuid4()}"
    request = child_pb2.CreateChildFlowRequest(master_flow=master, type=DISCOVERY)
    message_id = str(uuid.uuid4())
    first = await disc.CreateChildFlow(
        request, metadata=(*peer_md(tenant), ("x-message-id", message_id))
    )
    second = await disc.CreateChildFlow(
        request, metadata=(*peer_md(tenant), ("x-message-id", message_id))
    )
    # A different message carrying the same command: the unique master id still holds.
    third = await disc.CreateChildFlow(
        request, metadata=(*peer_md(tenant), ("x-message-id", str(uuid.uuid4())))
    )
    assert first.child_flow.name == second.child_flow.name == third.child_flow.name
    assert await fetchval(stack.database_url, "SELECT count(*) FROM discovery.child_flows") == 1
    # Exactly one INITIALIZATION event was written to the outbox (and nothing else: no
    # orchestrator commands this child's master, which does not exist).
    assert (
        await fetchval(
            stack.database_url, "SELECT count(*) FROM messaging.outbox WHERE source = 'discovery'"
        )
        == 1
    )

    # Now the event side, on a real master flow.
    orch = stack.orchestrator()
    flow = (await orch.CreateFlow(create_request(), metadata=md(tenant))).flow

    async def linked() -> bool:
        got = (
            await orch.GetFlow(orchestrator_pb2.GetFlowRequest(name=flow.name), metadata=md(tenant))
        ).flow
        return bool(got.child_flow)

    await eventually(linked)
    payload = await fetchval(
        stack.database_url,
        "SELECT payload FROM messaging.outbox WHERE source = 'discovery' AND ordering_key = $1"
        " AND seq = 1",
        uuid.UUID(flow.name.split("/")[1]),
    )
    replay = events_pb2.RecordPhaseStatusRequest.FromString(payload)
    msg = str(uuid.uuid4())
    r1 = await events.RecordPhaseStatus(replay, metadata=(*peer_md(tenant), ("x-message-id", msg)))
    r2 = await events.RecordPhaseStatus(replay, metadata=(*peer_md(tenant), ("x-message-id", msg)))
    assert (r1.applied, r2.applied) == (False, False)  # the relay applied it already
    assert (
        await fetchval(
            stack.database_url,
            "SELECT count(*) FROM orchestrator.flow_events WHERE flow_id = $1"
            " AND source_sequence = 1",
            uuid.UUID(flow.name.split("/")[1]),
        )
        == 1
    )


async def test_event_ahead_of_its_predecessor_is_refused(stack: Stack) -> None:
    await stack.start_orchestrator()
    tenant = new_tenant()
    orch, events = stack.orchestrator(), stack.flow_events()
    flow = (await orch.CreateFlow(create_request(), metadata=md(tenant))).flow
    event = flow_pb2.PhaseStatusEvent(
        flow=flow.name,
        child_flow=f"childFlows/{uuid.uuid4()}",
        phase=flow_pb2.PHASE_INITIALIZATION,
        status=flow_pb2.PHASE_STATUS_COMPLETED,
        sequence=2,
    )
    event.occur_time.GetCurrentTime()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await events.RecordPhaseStatus(
            events_pb2.RecordPhaseStatusRequest(event=event), metadata=peer_md(tenant)
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "arrived before event 1" in (err.value.details() or "")


def precondition(error: grpc.aio.AioRpcError) -> tuple[str, str]:
    """A FAILED_PRECONDITION's violation: its type (the reason) and its subject."""
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status is not None else ():
        failure = error_details_pb2.PreconditionFailure()
        if detail.Unpack(failure):
            (violation,) = failure.violations
            return violation.type, violation.subject
    raise AssertionError(f"no PreconditionFailure: {error}")


async def failed_in_data_import(stack: Stack, tenant: Tenant, name: str) -> None:
    failed = await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_FAILED)
    assert failed.current_phase == flow_pb2.PHASE_DATA_IMPORT
    assert phase(failed, flow_pb2.PHASE_DATA_IMPORT).error.reason == "IMPORT_NOT_FOUND"


def retry_import(name: str) -> orchestrator_pb2.RetryPhaseRequest:
    return orchestrator_pb2.RetryPhaseRequest(name=name, phase=flow_pb2.PHASE_DATA_IMPORT)


async def test_a_flow_failed_in_data_import_does_not_block_its_engagement(stack: Stack) -> None:
    """Issue 10: a flow on an import that does not exist fails in DATA_IMPORT; it no longer
    blocks the engagement, and retrying it, if it was created exclusive, checks the engagement
    again as CreateFlow does."""
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    orch = stack.orchestrator()
    exclusive = orchestrator_pb2.CreateFlowRequest(flow=discovery_flow(allow_concurrent=False))
    first = (await orch.CreateFlow(exclusive, metadata=md(tenant))).flow
    await failed_in_data_import(stack, tenant, first.name)

    # An exclusive create (allow_concurrent unset) beside it; on a real import, so the second
    # flow stays incomplete (it waits for its mapping's approval).
    second, _ = await stack.start_flow(tenant, inventory(20, bad_rows=False))
    with pytest.raises(grpc.aio.AioRpcError) as third:
        await orch.CreateFlow(exclusive, metadata=md(tenant))
    assert precondition(third.value) == ("INCOMPLETE_FLOW_EXISTS", second)

    # Retrying the first would make it incomplete beside the second: refused, naming it.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await orch.RetryPhase(retry_import(first.name), metadata=md(tenant))
    assert precondition(err.value) == ("INCOMPLETE_FLOW_EXISTS", second)
    assert second in (err.value.details() or "")
    await failed_in_data_import(stack, tenant, first.name)  # unchanged

    # Once the second is cancelled, the first may be retried.
    await orch.CancelFlow(orchestrator_pb2.CancelFlowRequest(name=second), metadata=md(tenant))
    retried = (await orch.RetryPhase(retry_import(first.name), metadata=md(tenant))).flow
    assert retried.status == flow_pb2.FLOW_STATUS_RUNNING


async def test_a_flow_created_with_allow_concurrent_is_retried_beside_another(
    stack: Stack,
) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    orch = stack.orchestrator()
    concurrent = orchestrator_pb2.CreateFlowRequest(flow=discovery_flow(allow_concurrent=True))
    first = (await orch.CreateFlow(concurrent, metadata=md(tenant))).flow
    await failed_in_data_import(stack, tenant, first.name)
    second, _ = await stack.start_flow(tenant, inventory(20, bad_rows=False))  # exclusive

    retried = (await orch.RetryPhase(retry_import(first.name), metadata=md(tenant))).flow
    assert retried.status == flow_pb2.FLOW_STATUS_RUNNING
    beside = await flow_state(stack, tenant, second)
    assert beside.status in (
        flow_pb2.FLOW_STATUS_INITIALIZING,
        flow_pb2.FLOW_STATUS_RUNNING,
        flow_pb2.FLOW_STATUS_WAITING_FOR_APPROVAL,
    )
