"""Batched delivery: many outbox messages in one internal call, one transaction, a result each.

Driven like the relay drives it: ``DeliverMessages`` on a service's internal port, over
mutual TLS, with messages of several tenants and outcomes.
"""

from __future__ import annotations

import uuid

import grpc
import pytest

from flowpair.internal.v1 import child_flow_service_pb2 as child_pb2
from flowpair.internal.v1 import message_batch_service_pb2 as batch_pb2
from flowpair.internal.v1 import message_batch_service_pb2_grpc as batch_pb2_grpc
from flowpair.v1 import flow_pb2
from flowpair_shared.domain import FlowStatus
from flowpair_shared.outbox.batch import BATCH_METHOD
from flowpair_shared.tenancy import Tenant
from tests.credentials import internal_channel
from tests.support import Stack, eventually, fetchval, new_tenant
from tests.test_phase_engine import flow_state

EXAMPLE = b"hostname,ip_address\nweb01,10.0.0.1\nweb02,10.0.0.2\n"
CHILD = "/flowpair.internal.v1.ChildFlowService/"


def _message(
    method: str, request: object, tenant: Tenant | None, message_id: str | None = None
) -> batch_pb2.OutboxMessage:
    assert hasattr(request, "SerializeToString")
    return batch_pb2.OutboxMessage(
        message_id=message_id or str(uuid.uuid4()),
        method=method,
        payload=request.SerializeToString(),
        headers=dict(tenant.metadata()) if tenant else {},
    )


async def _waiting(stack: Stack, tenant: Tenant) -> str:
    name, _ = await stack.start_flow(tenant, EXAMPLE)

    async def at_gate() -> bool:
        f = await flow_state(stack, tenant, name)
        return f.status == flow_pb2.FLOW_STATUS_WAITING_FOR_APPROVAL

    await eventually(at_gate)
    return name


async def test_a_batch_answers_per_message_and_a_refusal_undoes_only_its_own(
    stack: Stack,
) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery()
    one, two = new_tenant(), new_tenant()
    flow_one, flow_two = await _waiting(stack, one), await _waiting(stack, two)
    channel = internal_channel(stack.discovery_internal_port, "discovery", "orchestrator")
    stack.channels.append(channel)
    deliver = batch_pb2_grpc.MessageBatchServiceStub(channel).DeliverMessages
    cancel_two = _message(
        CHILD + "CancelChildFlow", child_pb2.CancelChildFlowRequest(master_flow=flow_two), two
    )
    messages = [
        # Another tenant's flow: not found for this one, and nothing else undone by it.
        _message(
            CHILD + "CancelChildFlow", child_pb2.CancelChildFlowRequest(master_flow=flow_two), one
        ),
        cancel_two,
        _message(
            "/flowpair.internal.v1.ChildFlowService/Nothing", child_pb2.RunPhaseRequest(), one
        ),
        _message(CHILD + "RunPhase", child_pb2.RunPhaseRequest(master_flow=flow_one), None),
    ]
    response = await deliver(batch_pb2.DeliverMessagesRequest(messages=messages))
    codes = [grpc.StatusCode.OK if r.code == 0 else _code(r.code) for r in response.results]
    assert [r.message_id for r in response.results] == [m.message_id for m in messages]
    assert codes == [
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.OK,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INVALID_ARGUMENT,
    ], [r.message for r in response.results]
    status_of = "SELECT status FROM discovery.child_flows WHERE master_flow_id = $1"
    master_two = uuid.UUID(flow_two.split("/")[1])
    assert await fetchval(stack.database_url, status_of, master_two) == FlowStatus.CANCELLED.value
    master_one = uuid.UUID(flow_one.split("/")[1])
    assert await fetchval(stack.database_url, status_of, master_one) != FlowStatus.CANCELLED.value
    # A redelivery of an applied message is a no-op, answered OK.
    again = await deliver(batch_pb2.DeliverMessagesRequest(messages=[cancel_two]))
    assert [r.code for r in again.results] == [0]
    inbox = await fetchval(
        stack.database_url,
        "SELECT count(*) FROM messaging.inbox WHERE message_id = $1",
        uuid.UUID(cancel_two.message_id),
    )
    assert inbox == 1


async def test_only_the_peer_service_may_deliver_a_batch(stack: Stack) -> None:
    """The discovery service's own certificate (same CA) may not feed discovery a batch."""
    await stack.start_orchestrator()
    await stack.start_discovery()
    channel = internal_channel(stack.discovery_internal_port, "discovery", "discovery")
    stack.channels.append(channel)
    call = channel.unary_unary(
        BATCH_METHOD,
        request_serializer=batch_pb2.DeliverMessagesRequest.SerializeToString,
        response_deserializer=batch_pb2.DeliverMessagesResponse.FromString,
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(batch_pb2.DeliverMessagesRequest())
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def _code(value: int) -> grpc.StatusCode:
    return next(c for c in grpc.StatusCode if c.value[0] == value)
