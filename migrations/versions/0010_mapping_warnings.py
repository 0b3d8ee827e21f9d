"""Warnings on a field mapping: problems a person should see before approving (values
implausible for the target attribute), kept apart from the reason so clients can show them.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE discovery.field_mappings ADD COLUMN warnings text[] NOT NULL DEFAULT '{}'"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE discovery.field_mappings DROP COLUMN warnings")
