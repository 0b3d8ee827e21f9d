"""The master flow aggregate and the phase events applied to it. Plain Python."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from flowpair_shared.domain import (
    FlowStatus,
    FlowType,
    Phase,
    PhaseStatus,
    check_flow_transition,
    check_phase_transition,
)
from flowpair_shared.errors import FailedPrecondition


@dataclass(frozen=True)
class PhaseError:
    reason: str
    message: str


@dataclass
class PhaseState:
    phase: Phase
    status: PhaseStatus = PhaseStatus.PENDING
    update_time: datetime | None = None
    error: PhaseError | None = None


@dataclass(frozen=True)
class PhaseEvent:
    """A phase transition reported by the child flow (``PhaseStatusEvent`` on the wire)."""

    flow_id: uuid.UUID
    child_flow_id: uuid.UUID
    phase: Phase
    status: PhaseStatus
    sequence: int
    occur_time: datetime
    error: PhaseError | None = None


@dataclass(frozen=True)
class Transition:
    """What applying an event changed; becomes a row of the flow's history."""

    history_seq: int
    event: PhaseEvent
    flow_status: FlowStatus


@dataclass
class MasterFlow:
    id: uuid.UUID
    client_account_id: uuid.UUID
    engagement_id: uuid.UUID
    create_user: uuid.UUID
    flow_type: FlowType
    display_name: str
    auto_approve: bool
    status: FlowStatus = FlowStatus.INITIALIZING
    current_phase: Phase = Phase.INITIALIZATION
    child_flow_id: uuid.UUID | None = None
    last_event_seq: int = 0
    history_seq: int = 0
    request_id: uuid.UUID | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None
    phases: dict[Phase, PhaseState] = field(
        default_factory=lambda: {p: PhaseState(p) for p in Phase}
    )

    def apply(self, event: PhaseEvent) -> Transition | None:
        """Apply a phase event; None when it was applied before (a redelivery).

        Events must arrive in sequence: one that skips ahead is refused, so the sender
        retries it after its predecessor instead of it being applied out of order.
        """
        if event.sequence <= self.last_event_seq:
            return None
        if event.sequence != self.last_event_seq + 1:
            raise FailedPrecondition(
                f"event {event.sequence} of flow {self.id} arrived before event"
                f" {self.last_event_seq + 1}",
                reason="EVENT_OUT_OF_ORDER",
                subject=f"flows/{self.id}",
            )
        if self.child_flow_id is not None and event.child_flow_id != self.child_flow_id:
            raise FailedPrecondition(
                f"flow {self.id} is linked to child {self.child_flow_id}, not"
                f" {event.child_flow_id}",
                reason="CHILD_FLOW_MISMATCH",
                subject=f"flows/{self.id}",
            )
        state = self.phases[event.phase]
        check_phase_transition(event.phase, state.status, event.status)
        target = self._flow_status_after(event)
        if target != self.status and not self.status.is_terminal:
            check_flow_transition(self.status, target)
            self.status = target
        state.status = event.status
        state.update_time = event.occur_time
        state.error = event.error
        self.current_phase = event.phase
        self.child_flow_id = event.child_flow_id
        self.last_event_seq = event.sequence
        self.history_seq += 1
        return Transition(self.history_seq, event, self.status)

    def _flow_status_after(self, event: PhaseEvent) -> FlowStatus:
        match event.status:
            case PhaseStatus.FAILED:
                return FlowStatus.FAILED
            case PhaseStatus.WAITING_FOR_APPROVAL:
                return FlowStatus.WAITING_FOR_APPROVAL
            case PhaseStatus.COMPLETED | PhaseStatus.SKIPPED if event.phase.next is None:
                return FlowStatus.COMPLETED
            case _:
                return FlowStatus.RUNNING
