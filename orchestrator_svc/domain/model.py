"""The master flow aggregate: lifecycle, phase controller and history. Plain Python.

Every change goes through a method here; each method checks the transition tables, appends
the history entries it causes to ``new_history`` and the commands for the discovery service
to ``commands``. The service layer persists both in one transaction (the commands through
the outbox), so state, history and commands can never disagree.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flowpair_shared.domain import (
    FlowEventKind,
    FlowStatus,
    FlowType,
    IdentityKey,
    IllegalTransition,
    Phase,
    PhaseStatus,
    check_flow_transition,
    check_phase_transition,
)
from flowpair_shared.errors import FailedPrecondition
from flowpair_shared.names import MAX_REASON


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
class ArrivingEvent:
    """A phase event the child has committed that has not reached the master yet."""

    phase: Phase
    status: PhaseStatus
    sequence: int


@dataclass(frozen=True)
class HistoryEntry:
    """One numbered entry of the flow's history (``FlowEvent`` on the wire)."""

    sequence: int
    kind: FlowEventKind
    flow_status: FlowStatus
    occur_time: datetime
    phase: Phase | None = None
    phase_status: PhaseStatus | None = None
    actor: uuid.UUID | None = None
    reason: str = ""
    error: PhaseError | None = None
    source_sequence: int | None = None


@dataclass(frozen=True)
class RunPhase:
    """Command: the discovery service runs ``phase`` of the child flow."""

    phase: Phase
    only_if: PhaseStatus | None = None
    """Sent again by the reconciler: act only if the child's phase is still in the status
    the reconciler saw (PENDING or RUNNING), never on one that moved on meanwhile."""


@dataclass(frozen=True)
class CancelChild:
    """Command: the discovery service cancels the child flow."""


@dataclass(frozen=True)
class CreateChild:
    """Command: the discovery service creates the child flow (idempotent per master flow)."""


Command = RunPhase | CancelChild | CreateChild


@dataclass(frozen=True)
class Actor:
    """Who asks for a lifecycle change, and why."""

    user_id: uuid.UUID
    reason: str


@dataclass
class MasterFlow:
    id: uuid.UUID
    client_account_id: uuid.UUID
    engagement_id: uuid.UUID
    create_user: uuid.UUID
    flow_type: FlowType
    display_name: str
    auto_approve: bool
    import_id: uuid.UUID | None = None
    mapping_confidence_threshold: float = 0.85
    identity_key: IdentityKey = IdentityKey.HOST_THEN_NAME
    status: FlowStatus = FlowStatus.INITIALIZING
    current_phase: Phase = Phase.INITIALIZATION
    child_flow_id: uuid.UUID | None = None
    paused_by: uuid.UUID | None = None
    last_event_seq: int = 0
    history_seq: int = 0
    request_id: uuid.UUID | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None
    phases: dict[Phase, PhaseState] = field(
        default_factory=lambda: {p: PhaseState(p) for p in Phase}
    )
    new_history: list[HistoryEntry] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)

    # -- history ---------------------------------------------------------------------------

    def _record(
        self,
        kind: FlowEventKind,
        *,
        occur_time: datetime | None = None,
        phase: Phase | None = None,
        phase_status: PhaseStatus | None = None,
        actor: uuid.UUID | None = None,
        reason: str = "",
        error: PhaseError | None = None,
        source_sequence: int | None = None,
    ) -> HistoryEntry:
        self.history_seq += 1
        entry = HistoryEntry(
            self.history_seq,
            kind,
            self.status,
            occur_time or datetime.now(UTC),
            phase,
            phase_status,
            actor,
            reason,
            error,
            source_sequence,
        )
        self.new_history.append(entry)
        return entry

    def _move(self, target: FlowStatus) -> None:
        if target != self.status:
            check_flow_transition(self.status, target)
            self.status = target
        if target != FlowStatus.PAUSED:
            self.paused_by = None

    def created(self) -> None:
        self._record(FlowEventKind.CREATED, actor=self.create_user)

    # -- phase controller ------------------------------------------------------------------

    def apply(self, event: PhaseEvent) -> HistoryEntry | None:
        """Apply a phase event from the child; None when it was applied before.

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
        state.status, state.update_time, state.error = event.status, event.occur_time, event.error
        self.current_phase = event.phase
        self.child_flow_id = event.child_flow_id
        self.last_event_seq = event.sequence
        if not self.status.is_terminal:
            self._advance(event)
        return self._record(
            FlowEventKind.PHASE_CHANGED,
            occur_time=event.occur_time,
            phase=event.phase,
            phase_status=event.status,
            error=event.error,
            source_sequence=event.sequence,
        )

    def _advance(self, event: PhaseEvent) -> None:
        finished = event.status in (PhaseStatus.COMPLETED, PhaseStatus.SKIPPED)
        if event.status == PhaseStatus.FAILED:
            self._move(FlowStatus.FAILED)
        elif finished and event.phase.next is None:
            self._move(FlowStatus.COMPLETED)
        elif self.status == FlowStatus.PAUSED:
            # Paused by a person: the phase boundary is reached (an approval gate too; its
            # phase shows WAITING_FOR_APPROVAL); nothing more starts until ResumeFlow.
            pass
        elif event.status == PhaseStatus.WAITING_FOR_APPROVAL:
            self._move(FlowStatus.WAITING_FOR_APPROVAL)
        else:
            # Running on, or the waiting phase's output was approved: the approval alone
            # moves the flow on, no ResumeFlow needed.
            self._move(FlowStatus.RUNNING)
            if finished:
                next_phase = event.phase.next
                assert next_phase is not None
                self.commands.append(RunPhase(next_phase))

    # -- lifecycle -------------------------------------------------------------------------

    def pause(self, actor: Actor) -> None:
        if self.status == FlowStatus.PAUSED:
            raise FailedPrecondition(
                f"flow {self.id} is already paused",
                reason="ALREADY_PAUSED",
                subject=f"flows/{self.id}",
            )
        if self.status not in (
            FlowStatus.INITIALIZING,
            FlowStatus.RUNNING,
            FlowStatus.WAITING_FOR_APPROVAL,
        ):
            raise IllegalTransition("flow", self.status, FlowStatus.PAUSED)
        self._move(FlowStatus.PAUSED)
        self.paused_by = actor.user_id
        self._record(FlowEventKind.PAUSED, actor=actor.user_id, reason=actor.reason)

    def resume(self, actor: Actor, *, arriving: Sequence[ArrivingEvent] = ()) -> None:
        """Continue a paused flow where it stopped; never waits.

        A no-op (nothing recorded) when the flow is running already, or when it waits for an
        approval that was given and whose event, in ``arriving``, moves it on by itself.
        Refused at once when the flow waits for an approval not given.
        """
        if self.status in (FlowStatus.INITIALIZING, FlowStatus.RUNNING):
            return
        state = self.phases[self.current_phase]
        if self.status == FlowStatus.WAITING_FOR_APPROVAL and state.status != PhaseStatus.COMPLETED:
            if any(
                e.sequence > self.last_event_seq
                and e.phase == self.current_phase
                and e.status == PhaseStatus.COMPLETED
                for e in arriving
            ):
                return
            raise FailedPrecondition(
                f"flow {self.id} is waiting for approval of {self.current_phase.name}; approve"
                " its output first (for ATTRIBUTE_MAPPING: UpdateFieldMappings with approve)",
                reason="APPROVAL_REQUIRED",
                subject=f"flows/{self.id}",
            )
        if self.status not in (FlowStatus.PAUSED, FlowStatus.WAITING_FOR_APPROVAL):
            raise IllegalTransition("flow", self.status, FlowStatus.RUNNING)
        if state.status == PhaseStatus.WAITING_FOR_APPROVAL:
            self._move(FlowStatus.WAITING_FOR_APPROVAL)
        else:
            self._move(FlowStatus.RUNNING)
            next_phase = self.current_phase.next
            if state.status in (PhaseStatus.COMPLETED, PhaseStatus.SKIPPED) and next_phase:
                self.commands.append(RunPhase(next_phase))
        self._record(FlowEventKind.RESUMED, actor=actor.user_id, reason=actor.reason)

    def cancel(self, actor: Actor) -> None:
        if self.status == FlowStatus.CANCELLED:
            raise IllegalTransition("flow", self.status, FlowStatus.CANCELLED)
        self._move(FlowStatus.CANCELLED)
        self.commands.append(CancelChild())
        self._record(FlowEventKind.CANCELLED, actor=actor.user_id, reason=actor.reason)

    def retry(self, phase: Phase, actor: Actor) -> None:
        if self.status != FlowStatus.FAILED or self.phases[phase].status != PhaseStatus.FAILED:
            raise FailedPrecondition(
                f"only a failed phase of a failed flow can be retried; flow {self.id} is"
                f" {self.status.name} and {phase.name} is {self.phases[phase].status.name}",
                reason="NOT_RETRYABLE",
                subject=f"flows/{self.id}",
            )
        self._move(FlowStatus.RUNNING)
        self.current_phase = phase
        self.commands.append(RunPhase(phase))
        self._record(
            FlowEventKind.PHASE_RETRIED, phase=phase, actor=actor.user_id, reason=actor.reason
        )

    # -- repairs by the reconciler ---------------------------------------------------------

    def reconciled(self, what: str, *, command: Command | None = None) -> None:
        """Record a repair in the history (and send ``command``, a lost one sent again)."""
        if command is not None:
            self.commands.append(command)
        phase = command.phase if isinstance(command, RunPhase) else None
        self._record(FlowEventKind.RECONCILED, phase=phase, reason=what[:MAX_REASON])
