"""Commands of the orchestrator to the discovery service, as outbox messages."""

from __future__ import annotations

from flowpair.internal.v1 import child_flow_service_pb2 as child_pb2
from flowpair.v1 import flow_pb2
from flowpair_shared.names import FLOWS, IMPORTS, format_name
from flowpair_shared.outbox import OutgoingMessage
from flowpair_shared.tenancy import Tenant
from orchestrator_svc.domain.model import CancelChild, Command, MasterFlow, RunPhase

DISCOVERY = "discovery"
_SERVICE = f"/{child_pb2.DESCRIPTOR.services_by_name['ChildFlowService'].full_name}/"


def _to_discovery(
    flow: MasterFlow,
    tenant: Tenant,
    method: str,
    payload: child_pb2.CreateChildFlowRequest
    | child_pb2.RunPhaseRequest
    | child_pb2.CancelChildFlowRequest,
) -> OutgoingMessage:
    return OutgoingMessage(
        destination=DISCOVERY,
        method=_SERVICE + method,
        payload=payload,
        ordering_key=flow.id,
        headers=tenant.metadata(),
    )


def create_child_flow(flow: MasterFlow, tenant: Tenant) -> OutgoingMessage:
    request = child_pb2.CreateChildFlowRequest(
        master_flow=format_name(FLOWS, flow.id),
        type=flow_pb2.FlowType.ValueType(int(flow.flow_type)),
        display_name=flow.display_name,
        auto_approve=flow.auto_approve,
        mapping_confidence_threshold=flow.mapping_confidence_threshold,
        identity_key=flow_pb2.IdentityKey.ValueType(int(flow.identity_key)),
    )
    # `import` is a Python keyword, so the field is only reachable by name.
    setattr(request, "import", format_name(IMPORTS, flow.import_id) if flow.import_id else "")
    return _to_discovery(flow, tenant, "CreateChildFlow", request)


def command(flow: MasterFlow, tenant: Tenant, cmd: Command) -> OutgoingMessage:
    master = format_name(FLOWS, flow.id)
    match cmd:
        case RunPhase(phase):
            return _to_discovery(
                flow,
                tenant,
                "RunPhase",
                child_pb2.RunPhaseRequest(
                    master_flow=master, phase=flow_pb2.Phase.ValueType(int(phase))
                ),
            )
        case CancelChild():
            return _to_discovery(
                flow,
                tenant,
                "CancelChildFlow",
                child_pb2.CancelChildFlowRequest(master_flow=master),
            )
