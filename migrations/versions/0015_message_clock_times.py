"""Message times from the clock, not the transaction's start.

``outbox.created_at`` and ``inbox.received_at`` defaulted to ``now()``, the start of the
writing transaction. A phase's COMPLETED event is written at the end of the phase's
transaction, and a CreateFlow may wait on its engagement's lock before it writes its command:
their messages looked as old as the transaction, so the relay's lag (inbox time minus outbox
time) counted the phase's run and the lock wait. ``clock_timestamp()`` is the time the row
is written, which for both is within one statement of the commit.

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


_COLUMNS = (("outbox", "created_at"), ("inbox", "received_at"))


def upgrade() -> None:
    for table, column in _COLUMNS:
        op.execute(
            f"ALTER TABLE messaging.{table} ALTER COLUMN {column} SET DEFAULT clock_timestamp()"
        )


def downgrade() -> None:
    for table, column in _COLUMNS:
        op.execute(f"ALTER TABLE messaging.{table} ALTER COLUMN {column} SET DEFAULT now()")
