"""Internal gRPC layer of the discovery service: the orchestrator's commands.

Served only on the internal address, behind mutual TLS (see flowpair_shared.server).
"""

from __future__ import annotations

from typing import Any

import grpc

from discovery_svc.adapters.jobs import ActiveJob
from discovery_svc.entrypoints.grpc_api import child_to_proto, master_name
from discovery_svc.service_layer.handlers import CreateChildFlow, Discovery
from flowpair.internal.v1 import child_flow_service_pb2 as child_pb2
from flowpair.internal.v1 import child_flow_service_pb2_grpc as child_pb2_grpc
from flowpair.v1 import flow_pb2, operations_pb2
from flowpair_shared import tenancy
from flowpair_shared.convert import enum_value, timestamp
from flowpair_shared.domain import FlowType, IdentityKey, Phase, PhaseStatus
from flowpair_shared.errors import Validator
from flowpair_shared.names import FLOWS, IMPORTS, check_display_name, parse_name
from flowpair_shared.outbox import message_id_from

Context = grpc.aio.ServicerContext[Any, Any]
_JOB_STATES = {
    "queued": operations_pb2.PHASE_JOB_STATE_QUEUED,
    "running": operations_pb2.PHASE_JOB_STATE_RUNNING,
}


def job_to_proto(job: ActiveJob) -> operations_pb2.PhaseJob:
    return operations_pb2.PhaseJob(
        phase=flow_pb2.Phase.ValueType(int(job.phase)),
        state=_JOB_STATES[job.state],
        attempts=job.attempts,
        lease_expire_time=timestamp(job.lease_until),
        create_time=timestamp(job.created_at),
    )


class ChildFlowServicer(child_pb2_grpc.ChildFlowServiceServicer):
    def __init__(self, discovery: Discovery) -> None:
        self._d = discovery

    async def CreateChildFlow(
        self, request: child_pb2.CreateChildFlowRequest, context: Context
    ) -> child_pb2.CreateChildFlowResponse:
        v = Validator()
        master = parse_name(request.master_flow, FLOWS, "master_flow", v)
        flow_type = enum_value(FlowType, request.type, "type", v, "FLOW_TYPE_")
        check_display_name(request.display_name, "display_name", v)
        import_id = parse_name(request.data_import, IMPORTS, "data_import", v, required=False)
        if not 0 <= request.mapping_confidence_threshold <= 1:
            v.add("mapping_confidence_threshold", "must be between 0 and 1")
        identity_key = IdentityKey.HOST_THEN_NAME
        if request.identity_key:
            key = enum_value(IdentityKey, request.identity_key, "identity_key", v, "IDENTITY_KEY_")
            identity_key = key or identity_key
        message_id = message_id_from(context.invocation_metadata())
        v.raise_if_any()
        assert master is not None and flow_type is not None
        child = await self._d.create_child_flow(
            tenancy.current(),
            CreateChildFlow(
                master_flow_id=master,
                flow_type=flow_type,
                display_name=request.display_name,
                import_id=import_id,
                auto_approve=request.auto_approve,
                confidence_threshold=request.mapping_confidence_threshold or 0.85,
                identity_key=identity_key,
            ),
            message_id,
        )
        return child_pb2.CreateChildFlowResponse(child_flow=child_to_proto(child))

    async def RunPhase(
        self, request: child_pb2.RunPhaseRequest, context: Context
    ) -> child_pb2.RunPhaseResponse:
        v = Validator()
        phase = enum_value(Phase, request.phase, "phase", v, "PHASE_")
        message_id = message_id_from(context.invocation_metadata())
        master = master_name(request.master_flow, v)
        only_if = None
        if request.only_if_status:
            only_if = enum_value(
                PhaseStatus, request.only_if_status, "only_if_status", v, "PHASE_STATUS_"
            )
        v.raise_if_any()
        assert phase is not None
        await self._d.run_phase(tenancy.current(), master, phase, message_id, only_if=only_if)
        return child_pb2.RunPhaseResponse()

    async def CancelChildFlow(
        self, request: child_pb2.CancelChildFlowRequest, context: Context
    ) -> child_pb2.CancelChildFlowResponse:
        v = Validator()
        message_id = message_id_from(context.invocation_metadata())
        master = master_name(request.master_flow, v)
        await self._d.cancel_child_flow(tenancy.current(), master, message_id)
        return child_pb2.CancelChildFlowResponse()

    async def DescribeChildFlow(
        self, request: child_pb2.DescribeChildFlowRequest, context: Context
    ) -> child_pb2.DescribeChildFlowResponse:
        master = master_name(request.master_flow, Validator())
        child, active = await self._d.describe_child_flow(tenancy.current(), master)
        return child_pb2.DescribeChildFlowResponse(
            child_flow=child_to_proto(child), phase_jobs=[job_to_proto(j) for j in active]
        )
