"""Fenced phase-job leases and resumable progress.

``lease_token`` is new on every claim: each commit a worker makes for a job checks it in the
same transaction, so a worker whose lease was taken over cannot commit. ``progress`` holds
the cursor of a phase that commits progressively, so a taken-over job resumes there.

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE discovery.phase_jobs ADD COLUMN lease_token uuid, ADD COLUMN progress jsonb"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE discovery.phase_jobs DROP COLUMN lease_token, DROP COLUMN progress")
