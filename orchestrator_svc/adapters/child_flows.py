"""The discovery service's account of a child flow, asked directly (not through the outbox):
diagnosis reads it, and must say so when the discovery service does not answer."""

from __future__ import annotations

import uuid
from datetime import UTC

import grpc

from flowpair.internal.v1 import child_flow_service_pb2 as child_pb2
from flowpair.internal.v1 import child_flow_service_pb2_grpc as child_pb2_grpc
from flowpair.v1 import operations_pb2
from flowpair_shared.domain import Phase, PhaseStatus
from flowpair_shared.names import FLOWS, format_name
from flowpair_shared.tenancy import Tenant
from orchestrator_svc.domain.diagnosis import Child, ChildAnswer, Job

# Waits for a connection (the channel may be backing off after the peer was down a moment
# ago) but not long: an operator is waiting, and no answer is itself the finding.
DESCRIBE_TIMEOUT = 3.0


def _child(response: child_pb2.DescribeChildFlowResponse) -> Child:
    proto = response.child_flow
    return Child(
        phases={Phase(p.phase): PhaseStatus(p.status) for p in proto.phases},
        jobs=[
            Job(
                phase=Phase(j.phase),
                running=j.state == operations_pb2.PHASE_JOB_STATE_RUNNING,
                attempts=j.attempts,
                lease_until=j.lease_expire_time.ToDatetime(tzinfo=UTC)
                if j.HasField("lease_expire_time")
                else None,
                created_at=j.create_time.ToDatetime(tzinfo=UTC),
            )
            for j in response.phase_jobs
        ],
    )


async def describe(
    channel: grpc.aio.Channel, tenant: Tenant, flow_id: uuid.UUID
) -> tuple[ChildAnswer, child_pb2.DescribeChildFlowResponse | None]:
    """The answer for diagnosis, and the child and its jobs as the wire has them."""
    stub: child_pb2_grpc.ChildFlowServiceAsyncStub = child_pb2_grpc.ChildFlowServiceStub(channel)
    try:
        response: child_pb2.DescribeChildFlowResponse = await stub.DescribeChildFlow(
            child_pb2.DescribeChildFlowRequest(master_flow=format_name(FLOWS, flow_id)),
            metadata=tuple(tenant.metadata().items()),
            timeout=DESCRIBE_TIMEOUT,
            wait_for_ready=True,
        )
    except grpc.aio.AioRpcError as error:
        code = error.code().name
        return ChildAnswer(None, code, error.details() or ""), None
    return ChildAnswer(_child(response)), response
