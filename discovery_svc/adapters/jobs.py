"""SQL for phase jobs: the durable queue of phase work in the discovery service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

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


async def enqueue(conn: AsyncConnection, child_flow_id: uuid.UUID, phase: Phase) -> None:
    """Queue ``phase`` of a child (a no-op if it is queued or running already)."""
    await conn.execute(
        text(
            """
            INSERT INTO discovery.phase_jobs (child_flow_id, phase, state)
            VALUES (:child, :phase, 'queued')
            ON CONFLICT (child_flow_id, phase) WHERE state IN ('queued', 'running') DO NOTHING
            """
        ),
        {"child": child_flow_id, "phase": int(phase)},
    )
    await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": JOBS_CHANNEL})


async def claim(conn: AsyncConnection, *, limit: int, lease_seconds: float) -> list[Job]:
    """Take queued jobs, and running ones whose lease expired (their process died), of every
    tenant (in ``db_scope.system()``)."""
    rows = await conn.execute(
        text(
            """
            UPDATE discovery.phase_jobs j
            SET state = 'running', attempts = attempts + 1,
                lease_until = now() + make_interval(secs => :lease)
            WHERE j.id IN (
              SELECT id FROM discovery.phase_jobs
              WHERE state = 'queued' OR (state = 'running' AND lease_until < now())
              ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
            RETURNING j.id, j.child_flow_id, j.phase, j.attempts, j.client_account_id,
                      j.engagement_id
            """
        ),
        {"limit": limit, "lease": lease_seconds},
    )
    return [Job(r[0], r[1], Phase(r[2]), r[3], r[4], r[5]) for r in rows]


async def extend_lease(conn: AsyncConnection, job_id: int, lease_seconds: float) -> bool:
    """Keep a running job ours; False if it was cancelled or taken over."""
    row = await conn.execute(
        text(
            """
            UPDATE discovery.phase_jobs SET lease_until = now() + make_interval(secs => :lease)
            WHERE id = :id AND state = 'running' RETURNING 1
            """
        ),
        {"id": job_id, "lease": lease_seconds},
    )
    return row.first() is not None


async def finish(conn: AsyncConnection, job_id: int, attempts: int) -> bool:
    """Mark our attempt of a job done; False if it was cancelled or another attempt took it."""
    row = await conn.execute(
        text(
            """
            UPDATE discovery.phase_jobs SET state = 'done', finished_at = now()
            WHERE id = :id AND state = 'running' AND attempts = :attempts RETURNING 1
            """
        ),
        {"id": job_id, "attempts": attempts},
    )
    return row.first() is not None


async def release(conn: AsyncConnection, job_id: int, attempts: int) -> bool:
    """Put a job whose attempt the database interrupted back in the queue now, rather than
    when its lease expires; False if the job is no longer ours. The attempt still counts: a
    phase that itself brings the database down ends after the runner's ``max_attempts``."""
    row = await conn.execute(
        text(
            """
            UPDATE discovery.phase_jobs SET state = 'queued', lease_until = NULL
            WHERE id = :id AND state = 'running' AND attempts = :attempts RETURNING 1
            """
        ),
        {"id": job_id, "attempts": attempts},
    )
    return row.first() is not None


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
