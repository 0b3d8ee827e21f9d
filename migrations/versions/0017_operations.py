"""Operations: what the reconciler, the operator RPCs and the metrics read across tenants.

- ``messaging.outbox.requeues`` counts how often a parked message was given a fresh set of
  attempts, so the reconciler re-queues a message a bounded number of times (an operator may
  always re-queue by hand).
- A history entry may record a repair by the reconciler (FlowEventKind RECONCILED, 7).
- Two narrow functions read ``orchestrator.flows`` across tenants for background work: the
  flows with no change for a while (id, tenant, creator and last change only; the reconciler
  then reads each in its own tenant's scope) and the count of flows by status (the metrics).
  They run as the tables' owner (SECURITY DEFINER), which a policy limited to that role lets
  read every flow; the services' role never reads another tenant's flow row, unlike a
  system-scope policy, which would show it whole.

Revision ID: 0017
Revises: 0016
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

APP_ROLE = "flowpair_app"
STALLED_FLOWS = "orchestrator.stalled_flows(float8, timestamptz, uuid, integer)"
RUNNING = 2
INITIALIZING = 1

UPGRADE = (
    "ALTER TABLE messaging.outbox ADD COLUMN requeues integer NOT NULL DEFAULT 0",
    "ALTER TABLE orchestrator.flow_events DROP CONSTRAINT flow_events_kind_check",
    "ALTER TABLE orchestrator.flow_events ADD CONSTRAINT flow_events_kind_check"
    " CHECK (kind BETWEEN 1 AND 7)",
    # Row-level security is FORCEd, so it binds the owner too: this policy, for the owner
    # alone, is what lets the two functions below read every tenant's flows.
    "CREATE POLICY owner_functions_read ON orchestrator.flows FOR SELECT TO CURRENT_USER"
    " USING (true)",
    # Bounded whatever the caller passes: at least a second of quiet, at most 1000 rows. The
    # keyset position lets a caller page through every quiet flow, not the oldest few alone.
    f"""
    CREATE FUNCTION orchestrator.stalled_flows(
        quiet_seconds float8, after_time timestamptz, after_id uuid, max_rows integer)
      RETURNS TABLE (id uuid, client_account_id uuid, engagement_id uuid, create_user uuid,
                     update_time timestamptz)
      LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
      AS $$
        SELECT f.id, f.client_account_id, f.engagement_id, f.create_user, f.update_time
        FROM orchestrator.flows f
        WHERE f.status IN ({INITIALIZING}, {RUNNING})
          AND f.update_time < now() - make_interval(secs => greatest(quiet_seconds, 1))
          AND (after_time IS NULL OR (f.update_time, f.id) > (after_time, after_id))
        ORDER BY f.update_time, f.id
        LIMIT least(greatest(max_rows, 1), 1000)
      $$
    """,
    """
    CREATE FUNCTION orchestrator.flow_counts()
      RETURNS TABLE (status smallint, flows bigint)
      LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
      AS $$ SELECT f.status, count(*) FROM orchestrator.flows f GROUP BY f.status $$
    """,
    f"REVOKE ALL ON FUNCTION {STALLED_FLOWS} FROM PUBLIC",
    "REVOKE ALL ON FUNCTION orchestrator.flow_counts() FROM PUBLIC",
    f"GRANT EXECUTE ON FUNCTION {STALLED_FLOWS} TO {APP_ROLE}",
    f"GRANT EXECUTE ON FUNCTION orchestrator.flow_counts() TO {APP_ROLE}",
    # The flows the reconciler looks for, oldest change first.
    "CREATE INDEX flows_quiet ON orchestrator.flows (update_time, id)"
    f" WHERE status IN ({INITIALIZING}, {RUNNING})",
)

DOWNGRADE = (
    "DROP INDEX orchestrator.flows_quiet",
    "DROP FUNCTION orchestrator.flow_counts()",
    f"DROP FUNCTION {STALLED_FLOWS}",
    "DROP POLICY owner_functions_read ON orchestrator.flows",
    # Row-level security binds the owner too: lift it for the one statement that must see
    # every tenant's entries.
    "ALTER TABLE orchestrator.flow_events NO FORCE ROW LEVEL SECURITY",
    "DELETE FROM orchestrator.flow_events WHERE kind = 7",
    "ALTER TABLE orchestrator.flow_events FORCE ROW LEVEL SECURITY",
    "ALTER TABLE orchestrator.flow_events DROP CONSTRAINT flow_events_kind_check",
    "ALTER TABLE orchestrator.flow_events ADD CONSTRAINT flow_events_kind_check"
    " CHECK (kind BETWEEN 1 AND 6)",
    "ALTER TABLE messaging.outbox DROP COLUMN requeues",
)


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
