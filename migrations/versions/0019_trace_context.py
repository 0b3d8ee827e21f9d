"""Phase jobs carry a trace context: ``discovery.phase_jobs.trace_context``.

A phase job runs later than the RunPhase call that queued it, often in another process. The
call's W3C trace context (``traceparent``, ``tracestate``), written with the job by the same
INSERT and returned by the claim, is what makes the job's span, and the phase events it
writes, part of the flow's trace. NULL when tracing was off (the job's run then starts a
trace of its own, if tracing is on there).

Nullable without a default: PostgreSQL adds the column without rewriting the table.

Revision ID: 0019
Revises: 0018
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE discovery.phase_jobs ADD COLUMN trace_context jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE discovery.phase_jobs DROP COLUMN trace_context")
