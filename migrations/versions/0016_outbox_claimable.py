"""An index for the relay's claim: a source's claimable messages in id order.

The claim asks for one source's undelivered, unparked messages ``ORDER BY id LIMIT n``. With
no index that gives that order over those rows alone, the planner walked the primary key in
id order and filtered out every delivered row on the way: delivered rows stay for the
retention period (7 days by default), so each claim grew with the history kept, and after a
few bursts of flows the claims took most of the database's CPU (auto_explain: 1,114 rows
read to return none). This index holds only the claimable rows, in the claim's order. It is
on ``id`` alone: keyed (source, id), it lost to the primary key whenever the statistics were
older than the last burst's deliveries (the primary key's perfect correlation made its
ordered walk look cheaper). A claim skips the other service's claimable rows: few, unless
that service's peer is down and its backlog grows, and even then only undelivered rows.

Revision ID: 0016
Revises: 0015
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # CONCURRENTLY: the outbox takes every flow's writes and holds the retained history, and a
    # plain CREATE INDEX would block those writes for the whole scan. It cannot run inside a
    # transaction; an attempt that failed half-way leaves an invalid index, dropped first.
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS messaging.outbox_claimable")
        op.execute(
            "CREATE INDEX CONCURRENTLY outbox_claimable ON messaging.outbox (id)"
            " WHERE delivered_at IS NULL AND parked_at IS NULL"
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS messaging.outbox_claimable")
