"""The orchestrator's own series: flows by status, and how long phases took and why they
failed (observed as the child's phase events are applied, in the serving process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import text

from flowpair_shared import metrics
from flowpair_shared.domain import FlowStatus, Phase, PhaseStatus
from orchestrator_svc.domain.model import PhaseEvent, PhaseState

_NAMES = ", ".join(f"({int(s)}, '{s.name}')" for s in FlowStatus)
# Counts of every tenant's flows through a function that shows nothing else (migration 0017).
FLOWS = metrics.Family(
    Gauge("flowpair_flows", "Master flows, by status (every tenant).", ["status"]),
    text(
        f"SELECT n.name, c.flows FROM orchestrator.flow_counts() AS c"
        f" JOIN (VALUES {_NAMES}) AS n(status, name) ON n.status = c.status"
    ),
    labels=tuple(s.name for s in FlowStatus),
)
PHASE_SECONDS = Histogram(
    "flowpair_phase_duration_seconds",
    "Time from a phase's RUNNING to its outcome, by phase and outcome (COMPLETED, FAILED,"
    " WAITING_FOR_APPROVAL), as the child reported them.",
    ["phase", "outcome"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
PHASE_FAILURES = Counter(
    "flowpair_phase_failures", "Phases that failed, by phase and error reason.", ["phase", "reason"]
)
_OUTCOMES = (PhaseStatus.COMPLETED, PhaseStatus.FAILED, PhaseStatus.WAITING_FOR_APPROVAL)


def phase_outcome(before: PhaseState, event: PhaseEvent) -> None:
    """Observe a phase event just applied, given the phase's state before it."""
    if event.status not in _OUTCOMES:
        return
    phase = Phase(event.phase).name
    if before.status == PhaseStatus.RUNNING and before.update_time is not None:
        seconds = (event.occur_time - before.update_time).total_seconds()
        PHASE_SECONDS.labels(phase, event.status.name).observe(max(seconds, 0.0))
    if event.status == PhaseStatus.FAILED:
        PHASE_FAILURES.labels(phase, event.error.reason if event.error else "UNKNOWN").inc()
