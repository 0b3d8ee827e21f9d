"""Outbox claims as leases: owner, expiry and a fencing token per row, so a relay claims in
one short transaction, delivers outside any, and records outcomes only while it still holds
the lease.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE messaging.outbox ADD COLUMN lease_owner uuid,"
        " ADD COLUMN lease_until timestamptz,"
        " ADD COLUMN lease_token bigint NOT NULL DEFAULT 0"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE messaging.outbox DROP COLUMN lease_owner, DROP COLUMN lease_until,"
        " DROP COLUMN lease_token"
    )
