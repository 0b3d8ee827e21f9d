"""Commands of the orchestrator to the discovery service, as outbox messages; and the
discovery service's phase events still on their way here."""

from __future__ import annotations

import uuid

from google.protobuf.message import DecodeError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from flowpair.internal.v1 import child_flow_service_pb2 as child_pb2
from flowpair.internal.v1 import flow_event_service_pb2 as events_pb2
from flowpair.v1 import flow_pb2
from flowpair_shared.domain import Phase, PhaseStatus
from flowpair_shared.names import FLOWS, IMPORTS, format_name
from flowpair_shared.outbox import OutgoingMessage
from flowpair_shared.tenancy import Tenant
from orchestrator_svc.domain.model import (
    ArrivingEvent,
    CancelChild,
    Command,
    CreateChild,
    MasterFlow,
    RunPhase,
)

DISCOVERY = "discovery"
_SERVICE = f"/{child_pb2.DESCRIPTOR.services_by_name['ChildFlowService'].full_name}/"
_RECORD_PHASE_STATUS = (
    f"/{events_pb2.DESCRIPTOR.services_by_name['FlowEventService'].full_name}/RecordPhaseStatus"
)
_ARRIVING = text(
    """
    SELECT payload FROM messaging.outbox
    WHERE source = :source AND ordering_key = :key AND method = :method
      AND delivered_at IS NULL AND parked_at IS NULL
    """
)


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
    request.data_import = format_name(IMPORTS, flow.import_id) if flow.import_id else ""
    return _to_discovery(flow, tenant, "CreateChildFlow", request)


def command(flow: MasterFlow, tenant: Tenant, cmd: Command) -> OutgoingMessage:
    master = format_name(FLOWS, flow.id)
    match cmd:
        case RunPhase(phase, only_if):
            return _to_discovery(
                flow,
                tenant,
                "RunPhase",
                child_pb2.RunPhaseRequest(
                    master_flow=master,
                    phase=flow_pb2.Phase.ValueType(int(phase)),
                    only_if_status=flow_pb2.PhaseStatus.ValueType(int(only_if or 0)),
                ),
            )
        case CancelChild():
            return _to_discovery(
                flow,
                tenant,
                "CancelChildFlow",
                child_pb2.CancelChildFlowRequest(master_flow=master),
            )
        case CreateChild():
            return create_child_flow(flow, tenant)


async def arriving_events(conn: AsyncConnection, flow_id: uuid.UUID) -> list[ArrivingEvent]:
    """The phase events of the flow that discovery has committed and not delivered (nor
    parked): what the flow will apply shortly, such as an approval given a moment ago."""
    rows = await conn.execute(
        _ARRIVING, {"source": DISCOVERY, "key": flow_id, "method": _RECORD_PHASE_STATUS}
    )
    found: list[ArrivingEvent] = []
    for (payload,) in rows:
        try:
            event = events_pb2.RecordPhaseStatusRequest.FromString(bytes(payload)).event
            found.append(
                ArrivingEvent(Phase(event.phase), PhaseStatus(event.status), event.sequence)
            )
        except (DecodeError, ValueError):
            continue  # not for this reader to judge: delivery refuses it and it parks
    return found
