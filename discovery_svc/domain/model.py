"""The child flow aggregate: per-phase execution state and the events it emits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flowpair_shared.domain import (
    FlowStatus,
    FlowType,
    Phase,
    PhaseStatus,
    check_phase_transition,
)


@dataclass(frozen=True)
class PhaseChanged:
    """A phase transition of a child flow, to be reported to the orchestrator."""

    child_flow_id: uuid.UUID
    master_flow_id: uuid.UUID
    phase: Phase
    status: PhaseStatus
    sequence: int
    occur_time: datetime


@dataclass
class ChildFlow:
    id: uuid.UUID
    master_flow_id: uuid.UUID
    client_account_id: uuid.UUID
    engagement_id: uuid.UUID
    create_user: uuid.UUID
    flow_type: FlowType
    display_name: str
    status: FlowStatus = FlowStatus.INITIALIZING
    event_seq: int = 0
    create_time: datetime | None = None
    update_time: datetime | None = None
    phases: dict[Phase, PhaseStatus] = field(
        default_factory=lambda: dict.fromkeys(Phase, PhaseStatus.PENDING)
    )
    phase_times: dict[Phase, datetime] = field(default_factory=dict)
    events: list[PhaseChanged] = field(default_factory=list)

    def set_phase(self, phase: Phase, status: PhaseStatus) -> PhaseChanged:
        """Move a phase to ``status`` (checked by the transition table) and record the event."""
        check_phase_transition(phase, self.phases[phase], status)
        self.phases[phase] = status
        now = datetime.now(UTC)
        self.phase_times[phase] = now
        self.event_seq += 1
        event = PhaseChanged(self.id, self.master_flow_id, phase, status, self.event_seq, now)
        self.events.append(event)
        return event

    def initialize(self) -> PhaseChanged:
        """Inputs checked at creation: INITIALIZATION completes and the flow is running."""
        self.status = FlowStatus.RUNNING
        return self.set_phase(Phase.INITIALIZATION, PhaseStatus.COMPLETED)
