"""Why a flow is where it is: findings from the master flow, its child as the discovery
service reports it, the flow's undelivered messages and the child's unfinished phase jobs.

Plain Python: the service layer gathers the facts, ``diagnose`` judges them. The same
judgement serves DiagnoseFlow and the reconciler, which carries out the repairs a finding
names (only those that cannot do harm: re-queueing a parked message a bounded number of
times, and sending again a command that was lost).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flowpair_shared.domain import FlowStatus, Phase, PhaseStatus
from flowpair_shared.outbox.store import UndeliveredMessage as Message
from orchestrator_svc.domain.model import Command, CreateChild, MasterFlow, RunPhase

LEASE_GRACE = timedelta(seconds=60)
"""A lease that ran out this recently is an ordinary takeover in progress (a runner claims
expired jobs on its next poll), not yet a stall."""
PHASE_TIMEOUT = "PHASE_TIMEOUT"
"""The error reason of a phase that ran out of time (the discovery service's phase runner)."""


class FindingCode(enum.IntEnum):
    """``FindingCode`` on the wire."""

    HEALTHY = 1
    CHILD_MISSING = 2
    COMMAND_UNDELIVERED = 3
    PEER_UNREACHABLE = 4
    MESSAGE_PARKED = 5
    PHASE_RUNNING = 6
    PHASE_FAILED = 7
    PHASE_TIMED_OUT = 8
    AWAITING_APPROVAL = 9
    PAUSED = 10
    STALLED = 11


# Most pressing first: the order findings are listed in.
_URGENCY = {
    code: rank
    for rank, code in enumerate(
        (
            FindingCode.PEER_UNREACHABLE,
            FindingCode.CHILD_MISSING,
            FindingCode.MESSAGE_PARKED,
            FindingCode.COMMAND_UNDELIVERED,
            FindingCode.PHASE_TIMED_OUT,
            FindingCode.PHASE_FAILED,
            FindingCode.STALLED,
            FindingCode.PAUSED,
            FindingCode.AWAITING_APPROVAL,
            FindingCode.PHASE_RUNNING,
            FindingCode.HEALTHY,
        )
    )
}


@dataclass(frozen=True)
class Job:
    """An unfinished phase job of the child."""

    phase: Phase
    running: bool
    attempts: int
    lease_until: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class Child:
    """The child flow as the discovery service reports it."""

    phases: dict[Phase, PhaseStatus]
    jobs: Sequence[Job] = ()


@dataclass(frozen=True)
class ChildAnswer:
    """What DescribeChildFlow answered: the child, or the call's status code and message."""

    child: Child | None
    code: str = ""
    """The gRPC status code's name when the call failed (``NOT_FOUND``, ``UNAVAILABLE``...)."""
    error: str = ""

    @property
    def unreachable(self) -> bool:
        return self.child is None and self.code != "NOT_FOUND"


@dataclass(frozen=True)
class RequeueMessage:
    """Repair: give a parked message a fresh set of attempts."""

    message_id: uuid.UUID


@dataclass(frozen=True)
class SendAgain:
    """Repair: send a command that was lost, with a new message id."""

    command: Command


Repair = RequeueMessage | SendAgain


@dataclass(frozen=True)
class Finding:
    code: FindingCode
    detail: str
    action: str
    phase: Phase | None = None
    message_id: uuid.UUID | None = None
    repair: Repair | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Thresholds:
    quiet: timedelta
    """No change for this long is a stall (when nothing in flight explains it)."""
    max_requeues: int
    """The reconciler re-queues a parked message while it was re-queued fewer times."""
    slow_delivery: timedelta = timedelta(seconds=30)
    """A message waiting longer than this is worth a finding."""


def _age(now: datetime, then: datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _peer_unreachable(answer: ChildAnswer) -> list[Finding]:
    if not answer.unreachable:
        return []
    return [
        Finding(
            FindingCode.PEER_UNREACHABLE,
            f"the discovery service did not answer: {answer.code}: {answer.error}",
            "Check the discovery service: its health, the internal address the orchestrator"
            " calls (FLOWPAIR_DISCOVERY_INTERNAL_TARGET) and the internal certificates. The"
            " flow's messages wait in the outbox and are delivered once it answers.",
        )
    ]


def _parked(flow: MasterFlow, messages: Sequence[Message], t: Thresholds) -> list[Finding]:
    # The reconciler looks at running flows only; a parked message of a flow waiting for a
    # person (an approval, a resume) is left to the operator.
    looked_at = flow.status in (FlowStatus.INITIALIZING, FlowStatus.RUNNING)
    return [
        Finding(
            FindingCode.MESSAGE_PARKED,
            f"{m.call} to {m.destination} (#{m.seq}) was parked after {m.attempts} attempts:"
            f" {m.last_error or 'no error recorded'}; the flow's later messages wait behind it",
            "Fix what the error says, then re-queue it: RequeueMessages with this message"
            f" (flowctl requeue --message messages/{m.message_id}).",
            message_id=m.message_id,
            repair=RequeueMessage(m.message_id)
            if looked_at and m.requeues < t.max_requeues
            else None,
        )
        for m in messages
        if m.parked_at is not None
    ]


def _undelivered(messages: Sequence[Message], now: datetime, t: Thresholds) -> list[Finding]:
    """The oldest slow message of each direction: it holds back those behind it."""
    found: list[Finding] = []
    heads: dict[str, Message] = {}
    for m in messages:
        if m.parked_at is None and now - m.created_at > t.slow_delivery:
            heads.setdefault(m.destination, m)
    for m in heads.values():
        error = f"; last error: {m.last_error}" if m.last_error else ""
        if m.delivering:
            state = "being delivered now"
        elif m.available_at > now:
            state = f"next attempt in {_age(m.available_at, now)}"
        else:
            state = "next attempt due now"
        found.append(
            Finding(
                FindingCode.COMMAND_UNDELIVERED,
                f"{m.call} to {m.destination} (#{m.seq}) has waited {_age(now, m.created_at)}"
                f" after {m.attempts} attempts ({state}){error}",
                f"The relay retries with backoff and nothing is lost. If the {m.destination}"
                " service is down or refusing calls, bring it back; see the error.",
                message_id=m.message_id,
            )
        )
    return found


def _child_missing(
    flow: MasterFlow, answer: ChildAnswer, messages: Sequence[Message], now: datetime, t: Thresholds
) -> list[Finding]:
    if answer.child is not None or answer.unreachable:
        return []
    creating = any(m.call == "CreateChildFlow" for m in messages)
    if creating:
        return []  # on its way: COMMAND_UNDELIVERED or MESSAGE_PARKED says why it is late
    reported = flow.child_flow_id is not None or any(m.source == "discovery" for m in messages)
    if reported or flow.status.is_terminal:
        return [
            Finding(
                FindingCode.CHILD_MISSING,
                "the discovery service has no child flow for this flow, although it was"
                " created" + (f" (childFlows/{flow.child_flow_id})" if flow.child_flow_id else ""),
                "The child was removed from the discovery database outside the service; its"
                " results are gone and cannot be rebuilt from here. Cancel this flow"
                " (CancelFlow; flowctl cancel) and create a new one on the same import.",
            )
        ]
    # Neither created nor on its way: the creation command was lost. Sending it again is
    # safe (creation is idempotent per master flow, and there is no child to disturb).
    return _stalled(
        flow,
        now,
        t,
        "the child flow was never created and no command to create it is on its way",
        SendAgain(CreateChild()),
    )


def _stalled(
    flow: MasterFlow, now: datetime, t: Thresholds, why: str, repair: Repair | None
) -> list[Finding]:
    since = flow.update_time or now
    if now - since < t.quiet:
        return []
    return [
        Finding(
            FindingCode.STALLED,
            f"no change for {_age(now, since)}: {why}",
            "The reconciler sends the lost command again by itself."
            if repair
            else "Nothing will move this flow by itself; see the detail, then RetryPhase or"
            " CancelFlow.",
            phase=repair.command.phase
            if isinstance(repair, SendAgain) and isinstance(repair.command, RunPhase)
            else None,
            repair=repair,
        )
    ]


def _lifecycle(flow: MasterFlow) -> list[Finding]:
    phase = flow.current_phase
    state = flow.phases[phase]
    if flow.status == FlowStatus.FAILED and state.status == PhaseStatus.FAILED:
        error = state.error
        said = f"{error.reason}: {error.message}" if error else "no error recorded"
        if error is not None and error.reason == PHASE_TIMEOUT:
            return [
                Finding(
                    FindingCode.PHASE_TIMED_OUT,
                    f"{phase.name} ran out of time: {said}",
                    "Run it again when the discovery service is less loaded (RetryPhase;"
                    " flowctl retry); a phase that always runs out of time needs a smaller"
                    " import or a longer limit.",
                    phase=phase,
                )
            ]
        return [
            Finding(
                FindingCode.PHASE_FAILED,
                f"{phase.name} failed: {said}",
                "Fix what the error says (for IMPORT_NOT_FOUND: upload the import), then"
                " RetryPhase (flowctl retry).",
                phase=phase,
            )
        ]
    if flow.status == FlowStatus.PAUSED:
        by = f" by {flow.paused_by}" if flow.paused_by else ""
        return [
            Finding(
                FindingCode.PAUSED,
                f"paused{by} after {phase.name} ({state.status.name})",
                "ResumeFlow (flowctl resume) continues it where it stopped.",
                phase=phase,
            )
        ]
    if state.status == PhaseStatus.WAITING_FOR_APPROVAL:
        return [
            Finding(
                FindingCode.AWAITING_APPROVAL,
                f"{phase.name} waits for a person to approve its output",
                "Review the mappings (ListFieldMappings; flowctl mappings), then approve them"
                " (UpdateFieldMappings with approve; flowctl approve).",
                phase=phase,
            )
        ]
    return []


def _work(
    flow: MasterFlow,
    answer: ChildAnswer,
    messages: Sequence[Message],
    now: datetime,
    t: Thresholds,
) -> list[Finding]:
    """The running flow's phase: in a runner's hands, queued, or lost."""
    child = answer.child
    if child is None or flow.status not in (FlowStatus.RUNNING, FlowStatus.INITIALIZING):
        return []
    found: list[Finding] = []
    for job in child.jobs:
        if job.running and job.lease_until is not None and now - job.lease_until > LEASE_GRACE:
            found.extend(
                _stalled(
                    flow,
                    now,
                    t,
                    f"the runner of {job.phase.name} stopped renewing its lease"
                    f" {_age(now, job.lease_until)} ago (attempt {job.attempts}); a live phase"
                    " runner takes it over, so the discovery service's phase workers are"
                    " stuck or down",
                    None,
                )
            )
            continue
        what = (
            f"running, attempt {job.attempts}, lease renewed until {job.lease_until:%H:%M:%S}"
            if job.running and job.lease_until
            else f"queued for a phase runner for {_age(now, job.created_at)}"
        )
        found.append(
            Finding(
                FindingCode.PHASE_RUNNING,
                f"{job.phase.name} is {what}",
                "Nothing to do; WatchFlow (flowctl watch) follows it.",
                phase=job.phase,
            )
        )
    if child.jobs or messages:
        return found
    # Nothing queued, running or on its way: which phase should be moving?
    state = flow.phases[flow.current_phase]
    expected: Phase | None = flow.current_phase
    if state.status in (PhaseStatus.COMPLETED, PhaseStatus.SKIPPED):
        expected = flow.current_phase.next
    if expected is None:
        return found
    there = child.phases.get(expected, PhaseStatus.PENDING)
    if expected != Phase.INITIALIZATION and there in (PhaseStatus.PENDING, PhaseStatus.RUNNING):
        lost = "command to run it" if there == PhaseStatus.PENDING else "job"
        return found + _stalled(
            flow,
            now,
            t,
            f"{expected.name} is {there.name} in the child but has no job and no message is"
            f" on its way (its {lost} was lost)",
            SendAgain(RunPhase(expected, only_if=there)),
        )
    if there == PhaseStatus.PENDING:
        return found  # INITIALIZATION: the child is being created
    return found + _stalled(
        flow,
        now,
        t,
        f"{expected.name} is {there.name} in the child, but that never reached this flow",
        None,
    )


def diagnose(
    flow: MasterFlow,
    answer: ChildAnswer,
    messages: Sequence[Message],
    *,
    now: datetime,
    thresholds: Thresholds,
) -> list[Finding]:
    """Every finding, the most pressing first; HEALTHY alone when there is nothing to say."""
    findings = [
        *_peer_unreachable(answer),
        *_child_missing(flow, answer, messages, now, thresholds),
        *_parked(flow, messages, thresholds),
        *_undelivered(messages, now, thresholds),
        *_lifecycle(flow),
        *_work(flow, answer, messages, now, thresholds),
    ]
    if not findings:
        findings.append(
            Finding(
                FindingCode.HEALTHY,
                f"the flow is {flow.status.name} and nothing holds it back",
                "Nothing to do.",
            )
        )
    return sorted(findings, key=lambda f: _URGENCY[f.code])
