"""gRPC layer of the discovery service: validate and translate, call a handler, translate back."""

from __future__ import annotations

from typing import Any

import grpc

from discovery_svc.domain.model import ChildFlow
from discovery_svc.service_layer.handlers import CreateChildFlow, Discovery
from flowpair.v1 import discovery_pb2, discovery_pb2_grpc, flow_pb2
from flowpair_shared import tenancy
from flowpair_shared.convert import enum_value, timestamp
from flowpair_shared.domain import FlowType
from flowpair_shared.errors import Validator
from flowpair_shared.names import CHILD_FLOWS, FLOWS, check_display_name, format_name, parse_name
from flowpair_shared.outbox import message_id_from

Context = grpc.aio.ServicerContext[Any, Any]


def child_to_proto(child: ChildFlow) -> discovery_pb2.ChildFlow:
    return discovery_pb2.ChildFlow(
        name=format_name(CHILD_FLOWS, child.id),
        master_flow=format_name(FLOWS, child.master_flow_id),
        type=flow_pb2.FlowType.ValueType(int(child.flow_type)),
        display_name=child.display_name,
        status=flow_pb2.FlowStatus.ValueType(int(child.status)),
        phases=[
            flow_pb2.PhaseState(
                phase=flow_pb2.Phase.ValueType(int(phase)),
                status=flow_pb2.PhaseStatus.ValueType(int(status)),
                update_time=timestamp(child.phase_times.get(phase)),
            )
            for phase, status in child.phases.items()
        ],
        create_time=timestamp(child.create_time),
        update_time=timestamp(child.update_time),
    )


class DiscoveryServicer(discovery_pb2_grpc.DiscoveryServiceServicer):
    def __init__(self, discovery: Discovery) -> None:
        self._d = discovery

    async def CreateChildFlow(
        self, request: discovery_pb2.CreateChildFlowRequest, context: Context
    ) -> discovery_pb2.CreateChildFlowResponse:
        v = Validator()
        master = parse_name(request.master_flow, FLOWS, "master_flow", v)
        flow_type = enum_value(FlowType, request.type, "type", v, "FLOW_TYPE_")
        check_display_name(request.display_name, "display_name", v)
        message_id = message_id_from(context.invocation_metadata())
        v.raise_if_any()
        assert master is not None and flow_type is not None
        child = await self._d.create_child_flow(
            tenancy.current(),
            CreateChildFlow(
                master_flow_id=master, flow_type=flow_type, display_name=request.display_name
            ),
            message_id,
        )
        return discovery_pb2.CreateChildFlowResponse(child_flow=child_to_proto(child))

    async def GetChildFlow(
        self, request: discovery_pb2.GetChildFlowRequest, context: Context
    ) -> discovery_pb2.GetChildFlowResponse:
        v = Validator()
        if bool(request.name) == bool(request.master_flow):
            v.add("name", "set exactly one of name or master_flow")
        child_id = parse_name(request.name, CHILD_FLOWS, "name", v, required=False)
        master = parse_name(request.master_flow, FLOWS, "master_flow", v, required=False)
        v.raise_if_any()
        child = await self._d.get_child_flow(
            tenancy.current(), child_id=child_id, master_flow_id=master
        )
        return discovery_pb2.GetChildFlowResponse(child_flow=child_to_proto(child))
