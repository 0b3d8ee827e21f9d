"""SQL for phase jobs: the durable queue of phase work in the discovery service.

A claim gives the job a new ``lease_token``. Every write a runner makes for a job names the
token it was given and checks it in the same transaction, so a runner whose lease expired and
was taken over (it stalled, its process was presumed dead) can no longer commit anything for
the job: the fence is the database row, not the runner's clock.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from flowpair_shared import metrics, tracing
from flowpair_shared.domain import Phase

JOBS_CHANNEL = "flowpair_phase_jobs"


@dataclass(frozen=True)
class Job:
    id: int
    child_flow_id: uuid.UUID
    phase: Phase
    attempts: int
    client_account_id: uuid.UUID
    """The tenant of the job's flow: its handler runs scoped to it."""
    engagement_id: uuid.UUID
    lease_token: uuid.UUID
    """This claim's fence: nothing is written for the job once another claim replaced it."""
    progress: dict[str, Any] | None = None
    """Where an earlier attempt's progressive commits stopped (None: from the start)."""
    trace_context: dict[str, Any] | None = None
    """The trace context (W3C headers) the job was queued in: its run continues that trace."""


class LeaseLost(Exception):
    """The job was cancelled or taken over: this runner may no longer write for it."""


async def enqueue(conn: AsyncConnection, child_flow_id: uuid.UUID, phase: Phase) -> None:
    """Queue ``phase`` of a child (a no-op if it is queued or running already), with the
    current trace context (the RunPhase call's), which its run continues."""
    queued_in = tracing.current()
    await conn.execute(
        text(
            """
            INSERT INTO discovery.phase_jobs (child_flow_id, phase, state, trace_context)
            VALUES (:child, :phase, 'queued', CAST(:trace AS jsonb))
            ON CONFLICT (child_flow_id, phase) WHERE state IN ('queued', 'running') DO NOTHING
            """
        ),
        {
            "child": child_flow_id,
            "phase": int(phase),
            "trace": None if queued_in is None else json.dumps(queued_in),
        },
    )
    await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": JOBS_CHANNEL})


async def claim(conn: AsyncConnection, *, limit: int, lease_seconds: float) -> list[Job]:
    """Take queued jobs, and running ones whose lease expired (their process died), of every
    tenant (in ``db_scope.system()``)."""
    rows = await conn.execute(
        text(
            """
            UPDATE discovery.phase_jobs j
            SET state = 'running', attempts = attempts + 1, lease_token = gen_random_uuid(),
                lease_until = now() + make_interval(secs => :lease)
            WHERE j.id IN (
              SELECT id FROM discovery.phase_jobs
              WHERE state = 'queued' OR (state = 'running' AND lease_until < now())
              ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
            RETURNING j.id, j.child_flow_id, j.phase, j.attempts, j.client_account_id,
                      j.engagement_id, j.lease_token, j.progress, j.trace_context
            """
        ),
        {"limit": limit, "lease": lease_seconds},
    )
    return [
        Job(r[0], r[1], Phase(r[2]), r[3], r[4], r[5], r[6], _json(r[7]), _json(r[8])) for r in rows
    ]


def _json(value: object) -> dict[str, Any] | None:
    # The driver hands jsonb over as text unless a codec is set (none is, engine-wide).
    if isinstance(value, str):
        loaded: dict[str, Any] = json.loads(value)
        return loaded
    return value if isinstance(value, dict) else None


async def extend_lease(conn: AsyncConnection, job: Job, lease_seconds: float) -> bool:
    """Keep a running job ours; False if it was cancelled or taken over."""
    row = await conn.execute(
        text(
            """
            UPDATE discovery.phase_jobs SET lease_until = now() + make_interval(secs => :lease)
            WHERE id = :id AND state = 'running' AND lease_token = :token RETURNING 1
            """
        ),
        {"id": job.id, "token": job.lease_token, "lease": lease_seconds},
    )
    return row.first() is not None


async def checkpoint(
    conn: AsyncConnection, job: Job, progress: dict[str, Any], lease_seconds: float
) -> None:
    """Record where the job stands, in the transaction that commits the work up to there,
    and renew the lease; LeaseLost (the caller rolls back) if the job is no longer ours."""
    row = await conn.execute(
        text(
            """
            UPDATE discovery.phase_jobs
            SET progress = CAST(:progress AS jsonb),
                lease_until = now() + make_interval(secs => :lease)
            WHERE id = :id AND state = 'running' AND lease_token = :token RETURNING 1
            """
        ),
        {
            "id": job.id,
            "token": job.lease_token,
            "progress": json.dumps(progress),
            "lease": lease_seconds,
        },
    )
    if row.first() is None:
        raise LeaseLost(f"phase job {job.id} is no longer held by this runner")


async def finish(conn: AsyncConnection, job: Job) -> bool:
    """Mark our attempt of a job done; False if it was cancelled or another claim took it."""
    row = await conn.execute(
        text(
            """
            UPDATE discovery.phase_jobs SET state = 'done', finished_at = now()
            WHERE id = :id AND state = 'running' AND lease_token = :token RETURNING 1
            """
        ),
        {"id": job.id, "token": job.lease_token},
    )
    return row.first() is not None


async def release(conn: AsyncConnection, job: Job, *, counts: bool = True) -> bool:
    """Put a job back in the queue now, rather than when its lease expires; False if the job
    is no longer ours. Its progress stays, so the next claim resumes there.

    After the database interrupted the attempt, it still ``counts``: a phase that itself
    brings the database down ends after the runner's ``max_attempts``. A graceful shutdown
    handing the job to another runner is no fault of the phase, and does not count."""
    row = await conn.execute(
        text(
            """
            UPDATE discovery.phase_jobs
            SET state = 'queued', lease_until = NULL, lease_token = NULL,
                attempts = attempts - CASE WHEN :counts THEN 0 ELSE 1 END
            WHERE id = :id AND state = 'running' AND lease_token = :token RETURNING 1
            """
        ),
        {"id": job.id, "token": job.lease_token, "counts": counts},
    )
    return row.first() is not None


@dataclass(frozen=True)
class ActiveJob:
    """A phase job not yet finished, as diagnosis shows it."""

    phase: Phase
    state: str
    """'queued' or 'running'."""
    attempts: int
    lease_until: datetime | None
    created_at: datetime


async def active_for_child(conn: AsyncConnection, child_flow_id: uuid.UUID) -> list[ActiveJob]:
    rows = await conn.execute(
        text(
            """
            SELECT phase, state, attempts, lease_until, created_at FROM discovery.phase_jobs
            WHERE child_flow_id = :child AND state IN ('queued', 'running') ORDER BY id
            """
        ),
        {"child": child_flow_id},
    )
    return [ActiveJob(Phase(r[0]), r[1], r[2], r[3], r[4]) for r in rows]


async def cancel_for_child(conn: AsyncConnection, child_flow_id: uuid.UUID) -> None:
    await conn.execute(
        text(
            """
            UPDATE discovery.phase_jobs SET state = 'cancelled', finished_at = now()
            WHERE child_flow_id = :child AND state IN ('queued', 'running')
            """
        ),
        {"child": child_flow_id},
    )


# The phase job queue: jobs waiting for a worker, and jobs a worker holds (the phase job table
# admits the system scope, as the runner claims across tenants).
QUEUE_DEPTH = metrics.Family(
    Gauge("flowpair_phase_jobs", "Phase jobs queued or running, by state.", ["state"]),
    text(
        "SELECT state, count(*) FROM discovery.phase_jobs"
        " WHERE state IN ('queued', 'running') GROUP BY state"
    ),
    labels=("queued", "running"),
)
