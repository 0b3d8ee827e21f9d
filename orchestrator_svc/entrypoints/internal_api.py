"""Internal gRPC layer of the orchestrator: what the discovery service's relay calls.

Served only on the internal address, behind mutual TLS (see flowpair_shared.server).
"""

from __future__ import annotations

from typing import Any

import grpc

from flowpair.internal.v1 import flow_event_service_pb2 as events_pb2
from flowpair.internal.v1 import flow_event_service_pb2_grpc as events_pb2_grpc
from flowpair.v1 import flow_pb2
from flowpair_shared import tenancy
from flowpair_shared.convert import MAX_ERROR_MESSAGE, MAX_ERROR_REASON, enum_value, from_timestamp
from flowpair_shared.domain import Phase, PhaseStatus
from flowpair_shared.errors import Validator
from flowpair_shared.inputs import check_length
from flowpair_shared.names import CHILD_FLOWS, FLOWS, parse_name
from flowpair_shared.outbox import message_id_from
from orchestrator_svc.domain.model import PhaseError, PhaseEvent
from orchestrator_svc.service_layer.handlers import Orchestrator

Context = grpc.aio.ServicerContext[Any, Any]


def event_from_proto(
    event: flow_pb2.PhaseStatusEvent, field: str, v: Validator
) -> PhaseEvent | None:
    flow_id = parse_name(event.flow, FLOWS, f"{field}.flow", v)
    child_id = parse_name(event.child_flow, CHILD_FLOWS, f"{field}.child_flow", v)
    phase = enum_value(Phase, event.phase, f"{field}.phase", v, "PHASE_")
    status = enum_value(PhaseStatus, event.status, f"{field}.status", v, "PHASE_STATUS_")
    if event.sequence < 1:
        v.add(f"{field}.sequence", "must be 1 or more")
    occur_time = None
    if not event.HasField("occur_time"):
        v.add(f"{field}.occur_time", "is required")
    else:
        occur_time = from_timestamp(event.occur_time, f"{field}.occur_time", v)
    if event.HasField("error"):
        # Not free text from a person: the sender clips it (convert.phase_error).
        check_length(event.error.reason, f"{field}.error.reason", v, max_length=MAX_ERROR_REASON)
        check_length(event.error.message, f"{field}.error.message", v, max_length=MAX_ERROR_MESSAGE)
    if (
        flow_id is None
        or child_id is None
        or phase is None
        or status is None
        or occur_time is None
        or v.violations
    ):
        return None
    error = PhaseError(event.error.reason, event.error.message) if event.HasField("error") else None
    return PhaseEvent(flow_id, child_id, phase, status, event.sequence, occur_time, error)


class FlowEventServicer(events_pb2_grpc.FlowEventServiceServicer):
    def __init__(self, orchestrator: Orchestrator) -> None:
        self._o = orchestrator

    async def RecordPhaseStatus(
        self, request: events_pb2.RecordPhaseStatusRequest, context: Context
    ) -> events_pb2.RecordPhaseStatusResponse:
        v = Validator()
        event = event_from_proto(request.event, "event", v)
        message_id = message_id_from(context.invocation_metadata())
        v.raise_if_any()
        assert event is not None
        applied = await self._o.record_phase_status(tenancy.current(), event, message_id)
        return events_pb2.RecordPhaseStatusResponse(applied=applied)
