"""Retention: the indexes the retention sweeps (``flowpair_shared/outbox/retention.py``) delete
by, and the row-level security policies that let them run in the system scope.

- delivered outbox rows by delivery time, per source;
- inbox rows by receipt time, per consumer;
- finished phase jobs by finish time;
- the inbox and the outbox sequences: the system scope may read, lock and delete their rows
  (never insert or change one), as background retention does across tenants. The outbox and
  the phase jobs admit the system scope already (0004).

Revision ID: 0012
Revises: 0011
"""

from alembic import op

from flowpair_shared.sqlscript import statements

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SYSTEM = "(SELECT current_setting('flowpair.scope', true) = 'system')"

UPGRADE = f"""
CREATE INDEX outbox_delivered ON messaging.outbox (source, delivered_at)
  WHERE delivered_at IS NOT NULL;
CREATE INDEX inbox_received ON messaging.inbox (consumer, received_at);
CREATE INDEX phase_jobs_finished ON discovery.phase_jobs (finished_at)
  WHERE state NOT IN ('queued', 'running');
CREATE POLICY system_retention_read ON messaging.inbox FOR SELECT USING ({SYSTEM});
CREATE POLICY system_retention_delete ON messaging.inbox FOR DELETE USING ({SYSTEM});
CREATE POLICY system_retention_read ON messaging.outbox_sequences FOR SELECT USING ({SYSTEM});
CREATE POLICY system_retention_delete ON messaging.outbox_sequences FOR DELETE USING ({SYSTEM});
-- SELECT ... FOR UPDATE needs an UPDATE policy; an actual UPDATE in the system scope fails.
CREATE POLICY system_retention_lock ON messaging.outbox_sequences FOR UPDATE
  USING ({SYSTEM}) WITH CHECK (false);
"""

DOWNGRADE = """
DROP POLICY system_retention_lock ON messaging.outbox_sequences;
DROP POLICY system_retention_delete ON messaging.outbox_sequences;
DROP POLICY system_retention_read ON messaging.outbox_sequences;
DROP POLICY system_retention_delete ON messaging.inbox;
DROP POLICY system_retention_read ON messaging.inbox;
DROP INDEX discovery.phase_jobs_finished;
DROP INDEX messaging.inbox_received;
DROP INDEX messaging.outbox_delivered;
"""


def upgrade() -> None:
    for statement in statements(UPGRADE):
        op.execute(statement)


def downgrade() -> None:
    for statement in statements(DOWNGRADE):
        op.execute(statement)
