"""Outgoing events of the discovery service, as outbox messages."""

from __future__ import annotations

from discovery_svc.domain.model import PhaseChanged
from flowpair.internal.v1 import flow_event_service_pb2 as events_pb2
from flowpair.v1 import flow_pb2
from flowpair_shared.convert import phase_error, timestamp
from flowpair_shared.names import CHILD_FLOWS, FLOWS, format_name
from flowpair_shared.outbox import OutgoingMessage
from flowpair_shared.tenancy import Tenant

ORCHESTRATOR = "orchestrator"
RECORD_PHASE_STATUS = (
    f"/{events_pb2.DESCRIPTOR.services_by_name['FlowEventService'].full_name}/RecordPhaseStatus"
)


def phase_status_event(event: PhaseChanged, tenant: Tenant) -> OutgoingMessage:
    return OutgoingMessage(
        destination=ORCHESTRATOR,
        method=RECORD_PHASE_STATUS,
        payload=events_pb2.RecordPhaseStatusRequest(
            event=flow_pb2.PhaseStatusEvent(
                flow=format_name(FLOWS, event.master_flow_id),
                child_flow=format_name(CHILD_FLOWS, event.child_flow_id),
                phase=flow_pb2.Phase.ValueType(int(event.phase)),
                status=flow_pb2.PhaseStatus.ValueType(int(event.status)),
                sequence=event.sequence,
                occur_time=timestamp(event.occur_time),
                error=phase_error(event.error),
            )
        ),
        ordering_key=event.master_flow_id,
        headers=tenant.metadata(),
    )
