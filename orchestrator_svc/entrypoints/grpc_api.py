"""gRPC layer of the orchestrator: validate and translate, call a handler, translate back."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc

from flowpair.v1 import flow_pb2, operations_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from flowpair_shared import tenancy
from flowpair_shared.convert import (
    enum_value,
    phase_error,
    phase_state,
    timestamp,
)
from flowpair_shared.domain import FlowStatus, FlowType, IdentityKey, Phase
from flowpair_shared.errors import Validator
from flowpair_shared.inputs import check_text
from flowpair_shared.names import (
    CHILD_FLOWS,
    FLOWS,
    IMPORTS,
    MESSAGES,
    check_display_name,
    check_reason,
    format_name,
    parse_name,
    parse_uuid,
)
from flowpair_shared.outbox.store import UndeliveredMessage
from flowpair_shared.vocabulary import Vocabulary
from orchestrator_svc.domain.diagnosis import Finding
from orchestrator_svc.domain.model import HistoryEntry, MasterFlow
from orchestrator_svc.service_layer.handlers import CreateFlow, Orchestrator
from orchestrator_svc.service_layer.operations import Diagnosis, Operations

Context = grpc.aio.ServicerContext[Any, Any]
DEFAULT_THRESHOLD = 0.85
_LifecycleRequest = (
    orchestrator_pb2.PauseFlowRequest
    | orchestrator_pb2.ResumeFlowRequest
    | orchestrator_pb2.CancelFlowRequest
)


def flow_to_proto(flow: MasterFlow) -> orchestrator_pb2.Flow:
    proto = orchestrator_pb2.Flow(
        name=format_name(FLOWS, flow.id),
        type=flow_pb2.FlowType.ValueType(int(flow.flow_type)),
        display_name=flow.display_name,
        status=flow_pb2.FlowStatus.ValueType(int(flow.status)),
        current_phase=flow_pb2.Phase.ValueType(int(flow.current_phase)),
        phases=[
            phase_state(s.phase, s.status, s.update_time, s.error) for s in flow.phases.values()
        ],
        child_flow=format_name(CHILD_FLOWS, flow.child_flow_id) if flow.child_flow_id else "",
        paused_by=str(flow.paused_by) if flow.paused_by else "",
        mapping_confidence_threshold=flow.mapping_confidence_threshold,
        identity_key=flow_pb2.IdentityKey.ValueType(int(flow.identity_key)),
        auto_approve=flow.auto_approve,
        create_user=str(flow.create_user),
        create_time=timestamp(flow.create_time),
        update_time=timestamp(flow.update_time),
        child_event_sequence=flow.last_event_seq,
        history_sequence=flow.history_seq,
    )
    proto.data_import = format_name(IMPORTS, flow.import_id) if flow.import_id else ""
    return proto


def history_to_proto(flow_id: uuid.UUID, e: HistoryEntry) -> flow_pb2.FlowEvent:
    return flow_pb2.FlowEvent(
        flow=format_name(FLOWS, flow_id),
        sequence=e.sequence,
        kind=flow_pb2.FlowEventKind.ValueType(int(e.kind)),
        phase=flow_pb2.Phase.ValueType(int(e.phase) if e.phase else 0),
        phase_status=flow_pb2.PhaseStatus.ValueType(int(e.phase_status) if e.phase_status else 0),
        flow_status=flow_pb2.FlowStatus.ValueType(int(e.flow_status)),
        actor=str(e.actor) if e.actor else "",
        reason=e.reason,
        error=phase_error(e.error),
        occur_time=timestamp(e.occur_time),
    )


def _flow_name(name: str, v: Validator) -> uuid.UUID:
    flow_id = parse_name(name, FLOWS, "name", v)
    v.raise_if_any()
    assert flow_id is not None
    return flow_id


def _lifecycle_args(request: _LifecycleRequest) -> tuple[uuid.UUID, str]:
    v = Validator()
    check_reason(request.reason, "reason", v)
    return _flow_name(request.name, v), request.reason


_FILTER_TERM = re.compile(r"^\s*status\s*=\s*(?:FLOW_STATUS_)?([A-Z_]+)\s*$")
MAX_FILTER = 1000


def parse_status_filter(text: str) -> list[FlowStatus]:
    """``status = X [OR status = Y ...]``, X with or without the FLOW_STATUS_ prefix."""
    v = Validator()
    check_text(text, "filter", v, max_length=MAX_FILTER)
    v.raise_if_any()
    if not text.strip():
        return []
    statuses: list[FlowStatus] = []
    for term in re.split(r"\s+OR\s+", text.strip()):
        match = _FILTER_TERM.match(term)
        if match is None or match.group(1) not in FlowStatus.__members__:
            v.add(
                "filter",
                f"cannot parse {term.strip()[:80]!r}; expected e.g."
                " 'status = RUNNING OR status = PAUSED' with a FlowStatus value",
            )
            continue
        statuses.append(FlowStatus[match.group(1)])
    v.raise_if_any()
    return statuses


# The services by the names the outbox stores them under.
PEER = Vocabulary(operations_pb2.Peer, "PEER_", ("orchestrator", "discovery"))


def message_to_proto(m: UndeliveredMessage) -> operations_pb2.OutboxMessage:
    if m.parked_at is not None:
        state = operations_pb2.MESSAGE_STATE_PARKED
    elif m.delivering:
        state = operations_pb2.MESSAGE_STATE_DELIVERING
    else:
        state = operations_pb2.MESSAGE_STATE_PENDING
    return operations_pb2.OutboxMessage(
        name=format_name(MESSAGES, m.message_id),
        flow=format_name(FLOWS, m.ordering_key),
        source=PEER.number(m.source),
        destination=PEER.number(m.destination),
        method=m.method,
        sequence=m.seq,
        attempts=m.attempts,
        rejections=m.rejections,
        last_error=m.last_error or "",
        state=state,
        create_time=timestamp(m.created_at),
        next_attempt_time=timestamp(m.available_at)
        if state == operations_pb2.MESSAGE_STATE_PENDING
        else None,
        park_time=timestamp(m.parked_at),
        requeue_count=m.requeues,
    )


def finding_to_proto(f: Finding) -> operations_pb2.Finding:
    return operations_pb2.Finding(
        code=operations_pb2.FindingCode.ValueType(int(f.code)),
        detail=f.detail,
        suggested_action=f.action,
        phase=flow_pb2.Phase.ValueType(int(f.phase) if f.phase else 0),
        message=format_name(MESSAGES, f.message_id) if f.message_id else "",
        repairable=f.repair is not None,
    )


def diagnosis_to_proto(d: Diagnosis) -> orchestrator_pb2.DiagnoseFlowResponse:
    response = orchestrator_pb2.DiagnoseFlowResponse(
        flow=flow_to_proto(d.flow),
        child_flow=d.described.child_flow if d.described else None,
        child_flow_error=f"{d.answer.code}: {d.answer.error}" if d.answer.code else "",
        phase_jobs=d.described.phase_jobs if d.described else (),
        messages=[message_to_proto(m) for m in d.messages],
        findings=[finding_to_proto(f) for f in d.findings],
        diagnose_time=timestamp(d.diagnose_time),
    )
    if d.last_event is not None:
        response.last_event.CopyFrom(history_to_proto(d.flow.id, d.last_event))
        response.last_event_age.FromTimedelta(
            max(d.diagnose_time - d.last_event.occur_time, timedelta(0))
        )
    return response


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    def __init__(self, orchestrator: Orchestrator, operations: Operations) -> None:
        self._o = orchestrator
        self._ops = operations

    async def CreateFlow(
        self, request: orchestrator_pb2.CreateFlowRequest, context: Context
    ) -> orchestrator_pb2.CreateFlowResponse:
        v = Validator()
        if not request.HasField("flow"):
            v.add("flow", "is required")
        flow_type = enum_value(FlowType, request.flow.type, "flow.type", v, "FLOW_TYPE_")
        check_display_name(request.flow.display_name, "flow.display_name", v)
        import_id = parse_name(
            request.flow.data_import,
            IMPORTS,
            "flow.data_import",
            v,
            required=flow_type == FlowType.DISCOVERY,
        )
        request_id = parse_uuid(request.request_id, "request_id", v, required=False)
        threshold = request.flow.mapping_confidence_threshold or DEFAULT_THRESHOLD
        if not 0 < threshold <= 1:
            v.add("flow.mapping_confidence_threshold", "must be between 0 and 1")
        identity_key = IdentityKey.HOST_THEN_NAME
        if request.flow.identity_key:
            identity_key = (
                enum_value(
                    IdentityKey, request.flow.identity_key, "flow.identity_key", v, "IDENTITY_KEY_"
                )
                or identity_key
            )
        v.raise_if_any()
        assert flow_type is not None
        flow = await self._o.create_flow(
            tenancy.current(),
            CreateFlow(
                flow_type=flow_type,
                display_name=request.flow.display_name,
                auto_approve=request.flow.auto_approve,
                import_id=import_id,
                allow_concurrent=request.flow.allow_concurrent,
                request_id=request_id,
                mapping_confidence_threshold=threshold,
                identity_key=identity_key,
            ),
        )
        return orchestrator_pb2.CreateFlowResponse(flow=flow_to_proto(flow))

    async def GetFlow(
        self, request: orchestrator_pb2.GetFlowRequest, context: Context
    ) -> orchestrator_pb2.GetFlowResponse:
        flow = await self._o.get_flow(tenancy.current(), _flow_name(request.name, Validator()))
        return orchestrator_pb2.GetFlowResponse(flow=flow_to_proto(flow))

    async def ListFlows(
        self, request: orchestrator_pb2.ListFlowsRequest, context: Context
    ) -> orchestrator_pb2.ListFlowsResponse:
        statuses = parse_status_filter(request.filter)
        page = await self._o.list_flows(
            tenancy.current(),
            statuses=statuses,
            query=",".join(s.name for s in statuses),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return orchestrator_pb2.ListFlowsResponse(
            flows=[flow_to_proto(f) for f in page.flows], next_page_token=page.next_page_token
        )

    async def PauseFlow(
        self, request: orchestrator_pb2.PauseFlowRequest, context: Context
    ) -> orchestrator_pb2.PauseFlowResponse:
        flow = await self._o.pause(tenancy.current(), *_lifecycle_args(request))
        return orchestrator_pb2.PauseFlowResponse(flow=flow_to_proto(flow))

    async def ResumeFlow(
        self, request: orchestrator_pb2.ResumeFlowRequest, context: Context
    ) -> orchestrator_pb2.ResumeFlowResponse:
        flow = await self._o.resume(tenancy.current(), *_lifecycle_args(request))
        return orchestrator_pb2.ResumeFlowResponse(flow=flow_to_proto(flow))

    async def CancelFlow(
        self, request: orchestrator_pb2.CancelFlowRequest, context: Context
    ) -> orchestrator_pb2.CancelFlowResponse:
        flow = await self._o.cancel(tenancy.current(), *_lifecycle_args(request))
        return orchestrator_pb2.CancelFlowResponse(flow=flow_to_proto(flow))

    async def RetryPhase(
        self, request: orchestrator_pb2.RetryPhaseRequest, context: Context
    ) -> orchestrator_pb2.RetryPhaseResponse:
        v = Validator()
        phase = enum_value(Phase, request.phase, "phase", v, "PHASE_")
        check_reason(request.reason, "reason", v)
        flow_id = _flow_name(request.name, v)
        assert phase is not None
        flow = await self._o.retry(tenancy.current(), flow_id, phase, request.reason)
        return orchestrator_pb2.RetryPhaseResponse(flow=flow_to_proto(flow))

    async def ListFlowEvents(
        self, request: orchestrator_pb2.ListFlowEventsRequest, context: Context
    ) -> orchestrator_pb2.ListFlowEventsResponse:
        flow_id = _flow_name(request.name, Validator())
        page = await self._o.list_history(
            tenancy.current(), flow_id, page_size=request.page_size, page_token=request.page_token
        )
        return orchestrator_pb2.ListFlowEventsResponse(
            events=[history_to_proto(flow_id, e) for e in page.entries],
            next_page_token=page.next_page_token,
        )

    async def WatchFlow(
        self, request: orchestrator_pb2.WatchFlowRequest, context: Context
    ) -> AsyncIterator[orchestrator_pb2.WatchFlowResponse]:
        v = Validator()
        if request.after_sequence < 0:
            v.add("after_sequence", "must not be negative")
        flow_id = _flow_name(request.name, v)
        async for entry in self._o.watch(
            tenancy.current(),
            flow_id,
            request.after_sequence,
            follow_retries=request.follow_retries,
        ):
            yield orchestrator_pb2.WatchFlowResponse(event=history_to_proto(flow_id, entry))

    async def DiagnoseFlow(
        self, request: orchestrator_pb2.DiagnoseFlowRequest, context: Context
    ) -> orchestrator_pb2.DiagnoseFlowResponse:
        flow_id = _flow_name(request.name, Validator())
        return diagnosis_to_proto(await self._ops.diagnose(tenancy.current(), flow_id))

    async def ListParkedMessages(
        self, request: orchestrator_pb2.ListParkedMessagesRequest, context: Context
    ) -> orchestrator_pb2.ListParkedMessagesResponse:
        v = Validator()
        flow_id = parse_name(request.flow, FLOWS, "flow", v, required=False)
        destination = PEER.word(request.destination, "destination", v)
        v.raise_if_any()
        page = await self._ops.list_parked(
            flow_id=flow_id,
            destination=destination,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return orchestrator_pb2.ListParkedMessagesResponse(
            messages=[message_to_proto(m) for m in page.messages],
            next_page_token=page.next_page_token,
        )

    async def RequeueMessages(
        self, request: orchestrator_pb2.RequeueMessagesRequest, context: Context
    ) -> orchestrator_pb2.RequeueMessagesResponse:
        v = Validator()
        target = request.WhichOneof("target")
        message_id = flow_id = None
        if target is None:
            v.add("target", "set one of message, flow or all")
        elif target == "message":
            message_id = parse_name(request.message, MESSAGES, "message", v)
        elif target == "flow":
            flow_id = parse_name(request.flow, FLOWS, "flow", v)
        elif not request.all:
            v.add("all", "must be true when set (it re-queues every parked message)")
        destination = PEER.word(request.destination, "destination", v)
        check_reason(request.reason, "reason", v)
        v.raise_if_any()
        requeued = await self._ops.requeue(
            tenancy.current(),
            message_id=message_id,
            flow_id=flow_id,
            destination=destination,
            reason=request.reason,
        )
        return orchestrator_pb2.RequeueMessagesResponse(
            messages=[message_to_proto(m) for m in requeued]
        )
