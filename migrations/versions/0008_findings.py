"""One column may feed several attributes: ``field_mappings.also_targets``.

Revision ID: 0008
Revises: 0006
"""

from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE discovery.field_mappings ADD COLUMN also_targets text[] NOT NULL DEFAULT '{}'"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE discovery.field_mappings DROP COLUMN also_targets")
