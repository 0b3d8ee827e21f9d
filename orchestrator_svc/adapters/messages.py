"""Outgoing commands of the orchestrator, as outbox messages."""

from __future__ import annotations

from flowpair.v1 import discovery_pb2, flow_pb2
from flowpair_shared.names import FLOWS, format_name
from flowpair_shared.outbox import OutgoingMessage
from flowpair_shared.tenancy import Tenant
from orchestrator_svc.domain.model import MasterFlow

DISCOVERY = "discovery"
CREATE_CHILD_FLOW = "/flowpair.v1.DiscoveryService/CreateChildFlow"


def create_child_flow(flow: MasterFlow, tenant: Tenant) -> OutgoingMessage:
    return OutgoingMessage(
        destination=DISCOVERY,
        method=CREATE_CHILD_FLOW,
        payload=discovery_pb2.CreateChildFlowRequest(
            master_flow=format_name(FLOWS, flow.id),
            type=flow_pb2.FlowType.ValueType(int(flow.flow_type)),
            display_name=flow.display_name,
        ),
        ordering_key=flow.id,
        headers=tenant.metadata(),
    )
