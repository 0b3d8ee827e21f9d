"""The child flow aggregate: per-phase execution state and the events it emits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flowpair_shared.domain import (
    FlowStatus,
    FlowType,
    IdentityKey,
    Phase,
    PhaseStatus,
    check_flow_transition,
    check_phase_transition,
)


@dataclass(frozen=True)
class PhaseFailure:
    """Why a phase failed: a stable reason code and a message for people."""

    reason: str
    message: str


@dataclass(frozen=True)
class PhaseChanged:
    """A phase transition of a child flow, to be reported to the orchestrator."""

    child_flow_id: uuid.UUID
    master_flow_id: uuid.UUID
    phase: Phase
    status: PhaseStatus
    sequence: int
    occur_time: datetime
    error: PhaseFailure | None = None


# The child's own status after a phase reaches each status.
_FLOW_STATUS_AFTER = {
    PhaseStatus.RUNNING: FlowStatus.RUNNING,
    PhaseStatus.FAILED: FlowStatus.FAILED,
    PhaseStatus.WAITING_FOR_APPROVAL: FlowStatus.WAITING_FOR_APPROVAL,
}


@dataclass
class ChildFlow:
    id: uuid.UUID
    master_flow_id: uuid.UUID
    client_account_id: uuid.UUID
    engagement_id: uuid.UUID
    create_user: uuid.UUID
    flow_type: FlowType
    display_name: str
    import_id: uuid.UUID | None = None
    auto_approve: bool = False
    confidence_threshold: float = 0.85
    identity_key: IdentityKey = IdentityKey.HOST_THEN_NAME
    status: FlowStatus = FlowStatus.INITIALIZING
    event_seq: int = 0
    create_time: datetime | None = None
    update_time: datetime | None = None
    phases: dict[Phase, PhaseStatus] = field(
        default_factory=lambda: dict.fromkeys(Phase, PhaseStatus.PENDING)
    )
    phase_times: dict[Phase, datetime] = field(default_factory=dict)
    phase_errors: dict[Phase, PhaseFailure] = field(default_factory=dict)
    events: list[PhaseChanged] = field(default_factory=list)

    def set_phase(
        self, phase: Phase, status: PhaseStatus, error: PhaseFailure | None = None
    ) -> PhaseChanged:
        """Move a phase to ``status`` (checked by the transition table) and record the event."""
        check_phase_transition(phase, self.phases[phase], status)
        target = _FLOW_STATUS_AFTER.get(status, self.status)
        if status in (PhaseStatus.COMPLETED, PhaseStatus.SKIPPED):
            target = FlowStatus.COMPLETED if phase.next is None else FlowStatus.RUNNING
        if target != self.status:
            check_flow_transition(self.status, target)
            self.status = target
        self.phases[phase] = status
        now = datetime.now(UTC)
        self.phase_times[phase] = now
        if error is None:
            self.phase_errors.pop(phase, None)
        else:
            self.phase_errors[phase] = error
        self.event_seq += 1
        event = PhaseChanged(
            self.id, self.master_flow_id, phase, status, self.event_seq, now, error
        )
        self.events.append(event)
        return event

    def initialize(self) -> PhaseChanged:
        """Inputs checked at creation: INITIALIZATION completes and the flow is running."""
        return self.set_phase(Phase.INITIALIZATION, PhaseStatus.COMPLETED)

    def can_start(self, phase: Phase) -> bool:
        """Whether a RunPhase command for ``phase`` has anything to do.

        A cancelled child ignores commands; a phase already running, waiting or done is left
        alone, which makes a repeated command harmless.
        """
        if self.status == FlowStatus.CANCELLED:
            return False
        return self.phases[phase] in (PhaseStatus.PENDING, PhaseStatus.FAILED)

    def can_finish(self, phase: Phase) -> bool:
        """Whether a phase job's result still applies (not cancelled, phase still running)."""
        return self.status != FlowStatus.CANCELLED and self.phases[phase] == PhaseStatus.RUNNING

    def cancel(self) -> None:
        """The orchestrator cancelled the flow: accepted in any state, so master and child
        always agree.

        The orchestrator owns the lifecycle and its accepted cancel is authoritative. A cancel
        can cross the child's last phase completing (the master cancelled before the COMPLETED
        event reached it), so a COMPLETED child becomes CANCELLED too, keeping the inventory it
        built; a cancel of a CANCELLED child changes nothing. Refusing either would leave the
        command to be rejected until it parks, and the two services disagreeing for good.
        """
        self.status = FlowStatus.CANCELLED
