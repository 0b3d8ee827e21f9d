"""DiagnoseFlow and the reconciler, against injected faults: each fault gets its finding code,
and the reconciler repairs the repairable ones (a parked message, a lost phase job, a lost
creation command) and leaves the rest, recorded in the flow's history."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import grpc
import pytest

from discovery_svc.phases import HANDLERS
from flowpair.v1 import flow_pb2, operations_pb2, orchestrator_pb2
from flowpair_shared import db_scope
from flowpair_shared.auth.principal import Role
from flowpair_shared.db import asyncpg_dsn
from flowpair_shared.domain import Phase
from flowpair_shared.outbox.relay import Relay
from flowpair_shared.settings import ReconcileSettings
from flowpair_shared.tenancy import Tenant
from orchestrator_svc.service_layer.handlers import Orchestrator
from orchestrator_svc.service_layer.reconciler import Reconciler
from tests.support import Stack, discovery_flow, eventually, fetch, fetchval, md, new_tenant
from tests.test_phase_engine import Flow, SlowValidation, flow_state, inventory, wait_status

F = operations_pb2


@pytest.fixture
def quick(stack: Stack) -> Stack:
    """The reconciler off in the background (each test runs a pass itself), and a short quiet
    threshold; tests make a flow quiet by moving its last change back in time."""
    stack.overrides["reconcile"] = ReconcileSettings(interval=0, quiet_seconds=60, max_requeues=1)
    return stack


async def diagnose(
    stack: Stack, tenant: Tenant, name: str
) -> orchestrator_pb2.DiagnoseFlowResponse:
    response: orchestrator_pb2.DiagnoseFlowResponse = await stack.orchestrator().DiagnoseFlow(
        orchestrator_pb2.DiagnoseFlowRequest(name=name), metadata=md(tenant)
    )
    return response


def codes(response: orchestrator_pb2.DiagnoseFlowResponse) -> list[int]:
    return [f.code for f in response.findings]


def finding(response: orchestrator_pb2.DiagnoseFlowResponse, code: int) -> operations_pb2.Finding:
    found = [f for f in response.findings if f.code == code]
    assert found, (code, response.findings, response.messages)
    return found[0]


async def make_quiet(stack: Stack, name: str) -> None:
    """As if the flow had not changed for an hour."""
    await fetch(
        stack.database_url,
        "UPDATE orchestrator.flows SET update_time = update_time - interval '1 hour' WHERE id = $1",
        uuid.UUID(name.split("/")[1]),
    )


def reconciler(stack: Stack) -> Reconciler:
    for app in stack.apps:
        for work in app.background:
            if isinstance(work, Reconciler):
                return work
    raise LookupError("no orchestrator in this process")


async def reconciled(stack: Stack, tenant: Tenant, name: str) -> list[str]:
    """The reasons of the flow's RECONCILED history entries."""
    events = await stack.orchestrator().ListFlowEvents(
        orchestrator_pb2.ListFlowEventsRequest(name=name, page_size=1000), metadata=md(tenant)
    )
    return [e.reason for e in events.events if e.kind == flow_pb2.FLOW_EVENT_KIND_RECONCILED]


async def create(stack: Stack, tenant: Tenant, **fields: Any) -> str:
    created = await stack.orchestrator().CreateFlow(
        orchestrator_pb2.CreateFlowRequest(flow=discovery_flow(**fields)), metadata=md(tenant)
    )
    return str(created.flow.name)


async def to_the_gate(stack: Stack, tenant: Tenant) -> str:
    imp = await stack.upload(tenant, inventory(20, bad_rows=False))
    name = (await stack.orchestrator().CreateFlow(Flow(imp.name), metadata=md(tenant))).flow.name
    await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_WAITING_FOR_APPROVAL)
    return str(name)


async def test_discovery_down_is_peer_unreachable_and_nothing_is_repaired(quick: Stack) -> None:
    stack = quick
    await stack.start_orchestrator()
    tenant = new_tenant()
    name = await create(stack, tenant)
    found = await diagnose(stack, tenant, name)
    assert codes(found)[0] == F.FINDING_CODE_PEER_UNREACHABLE
    assert found.child_flow_error.startswith(("UNAVAILABLE", "DEADLINE_EXCEEDED"))
    assert not found.HasField("child_flow")
    [waiting] = found.messages
    assert waiting.method.endswith("/CreateChildFlow")
    assert waiting.destination == F.PEER_DISCOVERY
    assert waiting.source == F.PEER_ORCHESTRATOR
    assert waiting.state in (F.MESSAGE_STATE_PENDING, F.MESSAGE_STATE_DELIVERING)
    assert found.last_event.kind == flow_pb2.FLOW_EVENT_KIND_CREATED
    assert F.FINDING_CODE_COMMAND_UNDELIVERED not in codes(found)  # young: not late yet
    # The command has waited for an hour, its relay retrying all along.
    await fetch(
        stack.database_url, "UPDATE messaging.outbox SET created_at = now() - interval '1 hour'"
    )
    found = await diagnose(stack, tenant, name)
    late = finding(found, F.FINDING_CODE_COMMAND_UNDELIVERED)
    assert "CreateChildFlow to discovery" in late.detail and "60 min" in late.detail
    assert late.message == waiting.name and not late.repairable
    await make_quiet(stack, name)
    assert await reconciler(stack).run_once() == 0
    assert await reconciled(stack, tenant, name) == []
    # Back up: the flow moves on and the finding goes away.
    await stack.start_discovery()
    await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_FAILED)
    assert F.FINDING_CODE_PEER_UNREACHABLE not in codes(await diagnose(stack, tenant, name))


async def test_a_failing_phase_is_phase_failed_with_its_error(quick: Stack) -> None:
    stack = quick
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    name = await create(stack, tenant)  # an import nobody uploaded: DATA_IMPORT fails
    await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_FAILED)
    found = await diagnose(stack, tenant, name)
    assert codes(found) == [F.FINDING_CODE_PHASE_FAILED]
    failed = found.findings[0]
    assert failed.phase == flow_pb2.PHASE_DATA_IMPORT
    assert "IMPORT_NOT_FOUND" in failed.detail
    assert "RetryPhase" in failed.suggested_action
    assert not failed.repairable
    assert found.child_flow.status == flow_pb2.FLOW_STATUS_FAILED
    assert found.last_event_age.ToTimedelta().total_seconds() >= 0


async def test_a_phase_over_its_time_limit_is_phase_timed_out(quick: Stack) -> None:
    stack = quick
    await stack.start_orchestrator()
    await stack.start_discovery(handlers={**HANDLERS, Phase.DATA_VALIDATION: SlowValidation()})
    tenant = new_tenant()
    imp = await stack.upload(tenant, inventory(20, bad_rows=False))
    name = (await stack.orchestrator().CreateFlow(Flow(imp.name), metadata=md(tenant))).flow.name
    await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_FAILED)
    found = await diagnose(stack, tenant, name)
    assert codes(found) == [F.FINDING_CODE_PHASE_TIMED_OUT]
    assert found.findings[0].phase == flow_pb2.PHASE_DATA_VALIDATION


async def test_the_approval_gate_then_a_pause(quick: Stack) -> None:
    stack = quick
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    name = await to_the_gate(stack, tenant)
    found = await diagnose(stack, tenant, name)
    assert codes(found) == [F.FINDING_CODE_AWAITING_APPROVAL]
    assert found.findings[0].phase == flow_pb2.PHASE_ATTRIBUTE_MAPPING
    assert "UpdateFieldMappings" in found.findings[0].suggested_action
    await stack.orchestrator().PauseFlow(
        orchestrator_pb2.PauseFlowRequest(name=name, reason="night"), metadata=md(tenant)
    )
    found = await diagnose(stack, tenant, name)
    assert codes(found) == [F.FINDING_CODE_PAUSED]
    assert str(tenant.user_id) in found.findings[0].detail
    assert "ResumeFlow" in found.findings[0].suggested_action


async def test_a_child_deleted_behind_the_services_back_is_child_missing(quick: Stack) -> None:
    stack = quick
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    name = await to_the_gate(stack, tenant)
    master = uuid.UUID(name.split("/")[1])
    # As in the field report, the row vanishes behind the service's back (as the superuser,
    # with the foreign keys' triggers off).
    conn = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("DELETE FROM discovery.child_flows WHERE master_flow_id = $1", master)
    finally:
        await conn.close()
    found = await diagnose(stack, tenant, name)
    assert codes(found)[0] == F.FINDING_CODE_CHILD_MISSING
    assert found.child_flow_error.startswith("NOT_FOUND")
    assert "CancelFlow" in found.findings[0].suggested_action
    assert not found.findings[0].repairable


async def _park(stack: Stack, name: str) -> None:
    """Park the flow's undelivered messages as the relay does when a peer refuses one, once
    no relay holds them (a delivery in flight would record its own outcome over it)."""

    async def parked() -> bool:
        rows = await fetch(
            stack.database_url,
            "UPDATE messaging.outbox SET parked_at = now(), attempts = 1, rejections = 1,"
            " last_error = 'INVALID_ARGUMENT: injected' WHERE ordering_key = $1"
            " AND delivered_at IS NULL AND (lease_until IS NULL OR lease_until < now())"
            " RETURNING 1",
            uuid.UUID(name.split("/")[1]),
        )
        return bool(rows)

    await eventually(parked)


async def test_a_parked_message_is_listed_requeued_by_the_reconciler_once(quick: Stack) -> None:
    stack = quick
    await stack.start_orchestrator()
    tenant = new_tenant()
    name = await create(stack, tenant)
    await _park(stack, name)  # the creation command, parked before discovery ever saw it
    await stack.start_discovery()
    found = await diagnose(stack, tenant, name)
    parked = finding(found, F.FINDING_CODE_MESSAGE_PARKED)
    assert parked.repairable
    assert "injected" in parked.detail
    assert F.FINDING_CODE_CHILD_MISSING not in codes(found)  # its creation is on its way
    [message] = found.messages
    assert message.state == F.MESSAGE_STATE_PARKED and parked.message == message.name

    listed = await stack.orchestrator().ListParkedMessages(
        orchestrator_pb2.ListParkedMessagesRequest(flow=name), metadata=md(tenant, Role.ADMIN)
    )
    assert [m.name for m in listed.messages] == [message.name]
    other = await stack.orchestrator().ListParkedMessages(
        orchestrator_pb2.ListParkedMessagesRequest(), metadata=md(new_tenant(), Role.ADMIN)
    )
    assert list(other.messages) == []  # another tenant sees none of it
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await stack.orchestrator().RequeueMessages(
            orchestrator_pb2.RequeueMessagesRequest(message=message.name),
            metadata=md(new_tenant(), Role.ADMIN),
        )
    assert foreign.value.code() == grpc.StatusCode.NOT_FOUND
    everything = await stack.orchestrator().RequeueMessages(
        orchestrator_pb2.RequeueMessagesRequest(all=True), metadata=md(new_tenant(), Role.ADMIN)
    )
    assert list(everything.messages) == []
    assert (await diagnose(stack, tenant, name)).messages[0].state == F.MESSAGE_STATE_PARKED

    # Not quiet yet: the reconciler leaves it alone.
    assert await reconciler(stack).run_once() == 0
    await make_quiet(stack, name)
    assert await reconciler(stack).run_once() == 1
    [why] = await reconciled(stack, tenant, name)
    assert message.name in why and "injected" not in why  # the error is an operator's
    await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_FAILED)  # delivered, then ran
    requeues = await fetchval(
        stack.database_url,
        "SELECT requeues FROM messaging.outbox WHERE message_id = $1",
        uuid.UUID(message.name.split("/")[1]),
    )
    assert requeues == 1


async def test_a_message_requeued_once_is_left_to_an_operator(quick: Stack) -> None:
    stack = quick
    await stack.start_orchestrator()
    tenant = new_tenant()
    name = await create(stack, tenant)
    await _park(stack, name)
    await fetch(stack.database_url, "UPDATE messaging.outbox SET requeues = 1")
    await make_quiet(stack, name)
    await stack.start_discovery()
    found = await diagnose(stack, tenant, name)
    assert not finding(found, F.FINDING_CODE_MESSAGE_PARKED).repairable
    assert await reconciler(stack).run_once() == 0
    # An operator may always re-queue.
    done = await stack.orchestrator().RequeueMessages(
        orchestrator_pb2.RequeueMessagesRequest(flow=name, reason="fixed the peer"),
        metadata=md(tenant, Role.ADMIN),
    )
    assert [m.state for m in done.messages] == [F.MESSAGE_STATE_PENDING]
    await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_FAILED)


async def test_requeue_refuses_a_request_without_a_target(quick: Stack) -> None:
    stack = quick
    await stack.start_orchestrator()
    tenant = new_tenant()
    for request in (
        orchestrator_pb2.RequeueMessagesRequest(),
        orchestrator_pb2.RequeueMessagesRequest(all=False),
        orchestrator_pb2.RequeueMessagesRequest(message="messages/nope"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stack.orchestrator().RequeueMessages(request, metadata=md(tenant, Role.ADMIN))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stack.orchestrator().RequeueMessages(
            orchestrator_pb2.RequeueMessagesRequest(message=f"messages/{uuid.uuid4()}"),
            metadata=md(tenant, Role.ADMIN),
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_lost_phase_job_is_stalled_and_commanded_again(quick: Stack) -> None:
    stack = quick
    await stack.start_orchestrator()
    await stack.start_discovery()
    await stack.runner().stop()  # DATA_IMPORT is RUNNING, its job queued and not taken
    tenant = new_tenant()
    imp = await stack.upload(tenant, inventory(20, bad_rows=False))
    name = (await stack.orchestrator().CreateFlow(Flow(imp.name), metadata=md(tenant))).flow.name

    async def running() -> bool:
        flow = await flow_state(stack, tenant, name)
        return flow.phases[flow_pb2.PHASE_DATA_IMPORT - 1].status == flow_pb2.PHASE_STATUS_RUNNING

    await eventually(running)
    await make_quiet(stack, name)  # a long phase: quiet, and nothing wrong
    found = await diagnose(stack, tenant, name)
    assert codes(found) == [F.FINDING_CODE_PHASE_RUNNING]
    [job] = found.phase_jobs
    assert job.state == F.PHASE_JOB_STATE_QUEUED and job.phase == flow_pb2.PHASE_DATA_IMPORT
    assert await reconciler(stack).run_once() == 0
    # The job vanishes (as if lost): nothing will ever run the phase.
    await fetch(stack.database_url, "DELETE FROM discovery.phase_jobs")
    await make_quiet(stack, name)
    found = await diagnose(stack, tenant, name)
    assert codes(found) == [F.FINDING_CODE_STALLED]
    assert found.findings[0].repairable
    assert found.findings[0].phase == flow_pb2.PHASE_DATA_IMPORT
    # Two reconcilers (replicas) at once: one repairs, the other finds the flow changed.
    ops = reconciler(stack).operations
    flow_id = uuid.UUID(name.split("/")[1])
    with db_scope.tenant(tenant):  # as the reconciler reads: in the flow's tenant
        outcomes = await asyncio.gather(
            ops.reconcile(tenant, flow_id), ops.reconcile(tenant, flow_id)
        )
    assert sorted(len(o.done) for o in outcomes) == [0, 1]
    [why] = await reconciled(stack, tenant, name)
    assert "RunPhase" in why
    assert await reconciler(stack).run_once() == 0
    stack.runner().start()
    await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_WAITING_FOR_APPROVAL)


async def test_a_job_whose_runner_stopped_renewing_is_stalled(quick: Stack) -> None:
    stack = quick
    await stack.start_orchestrator()
    await stack.start_discovery()
    await stack.runner().stop()
    tenant = new_tenant()
    imp = await stack.upload(tenant, inventory(20, bad_rows=False))
    name = (await stack.orchestrator().CreateFlow(Flow(imp.name), metadata=md(tenant))).flow.name
    await eventually(
        lambda: fetchval(stack.database_url, "SELECT count(*) FROM discovery.phase_jobs")
    )
    # Claimed by a runner that then stopped renewing its lease (stuck, or died).
    await fetch(
        stack.database_url,
        "UPDATE discovery.phase_jobs SET state = 'running', attempts = 1,"
        " lease_token = gen_random_uuid(), lease_until = now() - interval '10 minutes'",
    )
    await make_quiet(stack, name)
    found = await diagnose(stack, tenant, name)
    assert codes(found) == [F.FINDING_CODE_STALLED]
    assert "lease" in found.findings[0].detail
    assert not found.findings[0].repairable
    assert found.phase_jobs[0].state == F.PHASE_JOB_STATE_RUNNING
    assert await reconciler(stack).run_once() == 0


async def test_a_lost_creation_command_is_sent_again(quick: Stack) -> None:
    stack = quick
    await stack.start_orchestrator()
    tenant = new_tenant()
    name = await create(stack, tenant)
    # The command to create the child vanishes before discovery ever saw it.
    await fetch(stack.database_url, "DELETE FROM messaging.outbox")
    await stack.start_discovery()
    await make_quiet(stack, name)
    found = await diagnose(stack, tenant, name)
    assert codes(found) == [F.FINDING_CODE_STALLED]
    assert found.findings[0].repairable
    assert "never created" in found.findings[0].detail
    assert await reconciler(stack).run_once() == 1
    [why] = await reconciled(stack, tenant, name)
    assert "CreateChild" in why
    await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_FAILED)  # created, then ran


async def test_a_healthy_and_a_finished_flow(quick: Stack) -> None:
    stack = quick
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    name = await create(stack, tenant)
    await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_FAILED)
    await stack.orchestrator().CancelFlow(
        orchestrator_pb2.CancelFlowRequest(name=name), metadata=md(tenant)
    )

    async def settled() -> orchestrator_pb2.DiagnoseFlowResponse | None:
        # The child is asked before the outbox is read: the cancel may be delivered between.
        found = await diagnose(stack, tenant, name)
        cancelled = found.child_flow.status == flow_pb2.FLOW_STATUS_CANCELLED
        return found if cancelled and not found.messages else None

    found = await eventually(settled)
    assert found is not None
    assert codes(found) == [F.FINDING_CODE_HEALTHY]
    # Another tenant cannot diagnose it.
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await diagnose(stack, new_tenant(), name)
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_repair_is_dropped_when_the_flow_changed_since_its_diagnosis(quick: Stack) -> None:
    stack = quick
    await stack.start_orchestrator()
    tenant = new_tenant()
    name = await create(stack, tenant)
    await fetch(stack.database_url, "DELETE FROM messaging.outbox")  # creation lost
    await stack.start_discovery()
    await make_quiet(stack, name)
    ops = reconciler(stack).operations
    flow_id = uuid.UUID(name.split("/")[1])
    with db_scope.tenant(tenant):
        seen = (await ops.diagnose(tenant, flow_id)).flow.update_time
    await stack.orchestrator().PauseFlow(
        orchestrator_pb2.PauseFlowRequest(name=name), metadata=md(tenant)
    )
    with db_scope.tenant(tenant):
        repaired = await stack_orchestrator(stack).repair(
            tenant, flow_id, seen=seen, requeue=[], change=lambda flow, _: flow.reconciled("late")
        )
    assert repaired is False
    assert await reconciled(stack, tenant, name) == []


def stack_orchestrator(stack: Stack) -> Orchestrator:
    return reconciler(stack).operations.orchestrator


async def test_an_initializing_flow_whose_child_report_was_lost_is_stalled(quick: Stack) -> None:
    stack = quick
    await stack.start_orchestrator()
    discovery = await stack.start_discovery()
    for work in discovery.background:
        if isinstance(work, Relay):
            await work.stop()  # the child's reports stay in its outbox
    tenant = new_tenant()
    name = await create(stack, tenant)

    async def reported() -> bool:
        return bool(
            await fetchval(
                stack.database_url,
                "SELECT count(*) FROM messaging.outbox WHERE source = 'discovery'",
            )
        )

    await eventually(reported)
    # The child's report of its creation vanishes: the master stays INITIALIZING.
    await fetch(stack.database_url, "DELETE FROM messaging.outbox WHERE source = 'discovery'")
    await make_quiet(stack, name)
    found = await diagnose(stack, tenant, name)
    assert found.flow.status == flow_pb2.FLOW_STATUS_INITIALIZING
    assert codes(found) == [F.FINDING_CODE_STALLED], found.findings
    assert "never reached" in found.findings[0].detail
    assert not found.findings[0].repairable
