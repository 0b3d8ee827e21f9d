"""The discovery service's own retention sweep: finished phase jobs.

A job is finished once ``done`` or ``cancelled`` (any state but queued or running); nothing
reads it after that, its phase's outcome lives in ``child_phases`` and the flow's history.
"""

from __future__ import annotations

from sqlalchemy import text

from flowpair_shared.outbox.retention import Sweep

FINISHED_PHASE_JOBS = Sweep(
    "discovery.phase_jobs",
    text(
        """
        DELETE FROM discovery.phase_jobs WHERE id = ANY(ARRAY(
          SELECT id FROM discovery.phase_jobs
          WHERE state NOT IN ('queued', 'running')
            AND finished_at < now() - make_interval(secs => :retention)
          LIMIT :limit FOR UPDATE SKIP LOCKED))
        """
    ),
)
