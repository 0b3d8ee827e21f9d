"""Row-level security: every tenant table is visible only to its tenant's transactions.

Each table holding tenant data gets ``client_account_id`` and ``engagement_id`` (the tables
that had none are filled from their parent row, and default to the transaction's tenant so
existing INSERTs and COPYs need no change) and one policy comparing them with the settings
``flowpair.client_account_id`` / ``flowpair.engagement_id`` that ``flowpair_shared.db_scope``
sets at the start of every transaction. The outbox and the phase jobs, which the relay and
the phase runner claim across tenants, also admit ``flowpair.scope = 'system'``.

RLS is FORCEd, so it binds the tables' owner too; only superusers and BYPASSRLS roles skip
it. The services connect as ``flowpair_app`` (created here, without BYPASSRLS; its password is
FLOWPAIR_APP_DB_PASSWORD when that is set at migration time), the migrations as the owner.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

APP_ROLE = "flowpair_app"
SCHEMAS = ("orchestrator", "discovery", "messaging")

# The settings as the policies read them: NULL (no row matches) when unset or empty. Each is
# a scalar subquery, so a statement evaluates it once (an InitPlan), not once per row.
ACCOUNT = "(SELECT nullif(current_setting('flowpair.client_account_id', true), '')::uuid)"
ENGAGEMENT = "(SELECT nullif(current_setting('flowpair.engagement_id', true), '')::uuid)"
SYSTEM = "(SELECT current_setting('flowpair.scope', true) = 'system')"
TENANT = f"client_account_id = {ACCOUNT} AND engagement_id = {ENGAGEMENT}"

# Tables that already carry their tenant (written explicitly by the code).
OWN_TENANT = (
    "orchestrator.flows",
    "discovery.child_flows",
    "discovery.imports",
    "discovery.assets",
    "discovery.dependencies",
)

# Tables that get the tenant columns: (table, where an existing row finds its tenant: a row
# source ``p`` and how it joins the table's row ``t``, tried in order).
_FLOW = ("orchestrator.flows", "p.id = t.flow_id")
_CHILD = ("discovery.child_flows", "p.id = t.child_flow_id")
_IMPORT = ("discovery.imports", "p.id = t.import_id")
ADDED: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("orchestrator.flow_phases", (_FLOW,)),
    ("orchestrator.flow_events", (_FLOW,)),
    ("discovery.child_phases", (_CHILD,)),
    ("discovery.phase_jobs", (_CHILD,)),
    ("discovery.raw_records", (_IMPORT,)),
    ("discovery.quarantined_rows", (_IMPORT,)),
    ("discovery.data_profiles", (_CHILD,)),
    ("discovery.mapping_sets", (_CHILD,)),
    ("discovery.field_mappings", (_CHILD,)),
    ("discovery.cleansed_records", (_CHILD,)),
    ("discovery.cleansing_issues", (_CHILD,)),
    ("discovery.asset_sources", (_CHILD,)),
    # Every message carries its tenant's headers; its ordering key is a master flow id.
    (
        "messaging.outbox",
        (
            (
                "(SELECT id, (headers->>'x-client-account-id')::uuid AS client_account_id,"
                " (headers->>'x-engagement-id')::uuid AS engagement_id FROM messaging.outbox"
                " WHERE headers ? 'x-client-account-id' AND headers ? 'x-engagement-id')",
                "p.id = t.id",
            ),
            ("orchestrator.flows", "p.id = t.ordering_key"),
        ),
    ),
    (
        "messaging.outbox_sequences",
        (
            (
                "(SELECT DISTINCT ON (source, ordering_key) source, ordering_key,"
                " client_account_id, engagement_id FROM messaging.outbox)",
                "p.source = t.source AND p.ordering_key = t.ordering_key",
            ),
            ("orchestrator.flows", "p.id = t.ordering_key"),
        ),
    ),
    ("messaging.inbox", (("messaging.outbox", "p.message_id = t.message_id"),)),
)

# Read and claimed across tenants by background work (the relay, the phase runner).
SYSTEM_SCOPED = ("messaging.outbox", "discovery.phase_jobs")

RLS_TABLES = OWN_TENANT + tuple(table for table, _ in ADDED)


def _create_role() -> None:
    # Roles belong to the whole cluster: another database (or a concurrent migration of one)
    # may have created it already.
    op.execute(
        f"""
        DO $$
        BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
            CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
          END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
          NULL;
        END
        $$
        """
    )
    password = os.environ.get("FLOWPAIR_APP_DB_PASSWORD")
    if password:
        # Through a setting rather than a literal in the statement text (statement logs).
        op.execute(
            sa.text("SELECT set_config('flowpair.app_password', :pw, true)").bindparams(pw=password)
        )
        op.execute(
            f"""
            DO $$
            BEGIN
              EXECUTE format('ALTER ROLE {APP_ROLE} PASSWORD %L',
                             current_setting('flowpair.app_password'));
            END
            $$
            """
        )
        op.execute("SELECT set_config('flowpair.app_password', '', true)")


def _grant() -> None:
    schemas = ", ".join(SCHEMAS)
    op.execute(
        f"""
        DO $$
        BEGIN
          EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO {APP_ROLE}',
                         current_database());
        END
        $$
        """
    )
    op.execute(f"GRANT USAGE ON SCHEMA {schemas} TO {APP_ROLE}")
    op.execute(
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schemas} TO {APP_ROLE}"
    )
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schemas} TO {APP_ROLE}")
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schemas}"
        f" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}"
    )
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schemas}"
        f" GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}"
    )
    # The inventory ANALYZEs the tables it has just filled (autovacuum cannot see uncommitted
    # rows), which only their owner may do (or, from PostgreSQL 17, a holder of MAINTAIN).
    # One narrow function, run as the owner, refreshes exactly those tables on every version;
    # it reads no rows for the caller and statistics stay hidden from the role.
    op.execute(
        """
        CREATE FUNCTION discovery.analyze_fresh(target text) RETURNS void
          LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
          AS $$
          BEGIN
            IF target NOT IN ('cleansed_records', 'assets', 'asset_sources') THEN
              RAISE EXCEPTION 'not a table the inventory refreshes: %', target;
            END IF;
            EXECUTE format('ANALYZE discovery.%I', target);
          END
          $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION discovery.analyze_fresh(text) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION discovery.analyze_fresh(text) TO {APP_ROLE}")


def _add_tenant_columns(table: str, sources: tuple[tuple[str, str], ...]) -> None:
    op.execute(
        f"ALTER TABLE {table} ADD COLUMN client_account_id uuid, ADD COLUMN engagement_id uuid"
    )
    for rows, join in sources:
        op.execute(
            f"UPDATE {table} t SET client_account_id = p.client_account_id,"
            f" engagement_id = p.engagement_id FROM {rows} p"
            f" WHERE {join} AND t.client_account_id IS NULL"
        )
    if table == "messaging.outbox":
        op.execute(
            """
            DO $$
            BEGIN
              IF EXISTS (SELECT FROM messaging.outbox
                         WHERE client_account_id IS NULL AND delivered_at IS NULL) THEN
                RAISE EXCEPTION 'undelivered outbox messages without a tenant: deliver or'
                  ' delete them, then migrate again';
              END IF;
            END
            $$
            """
        )
    # Rows no parent claims (delivered messages, inbox entries of a peer's database,
    # leftovers) belong to no tenant: no tenant's query could ever reach them again.
    op.execute(f"DELETE FROM {table} WHERE client_account_id IS NULL OR engagement_id IS NULL")
    op.execute(
        f"""
        ALTER TABLE {table}
          ALTER COLUMN client_account_id SET NOT NULL,
          ALTER COLUMN engagement_id SET NOT NULL,
          ALTER COLUMN client_account_id
            SET DEFAULT nullif(current_setting('flowpair.client_account_id', true), '')::uuid,
          ALTER COLUMN engagement_id
            SET DEFAULT nullif(current_setting('flowpair.engagement_id', true), '')::uuid
        """
    )


def _secure(table: str) -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({TENANT}) WITH CHECK ({TENANT})")
    if table in SYSTEM_SCOPED:
        op.execute(f"CREATE POLICY system_scope ON {table} USING ({SYSTEM}) WITH CHECK ({SYSTEM})")


def upgrade() -> None:
    _create_role()
    _grant()
    for table, sources in ADDED:
        _add_tenant_columns(table, sources)
    for table in RLS_TABLES:
        _secure(table)


def downgrade() -> None:
    schemas = ", ".join(SCHEMAS)
    for table in RLS_TABLES:
        op.execute(f"DROP POLICY IF EXISTS system_scope ON {table}")
        op.execute(f"DROP POLICY tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY")
    for table, _ in ADDED:
        op.execute(f"ALTER TABLE {table} DROP COLUMN client_account_id, DROP COLUMN engagement_id")
    op.execute("DROP FUNCTION discovery.analyze_fresh(text)")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schemas} REVOKE ALL ON TABLES FROM {APP_ROLE}")
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schemas} REVOKE ALL ON SEQUENCES FROM {APP_ROLE}"
    )
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schemas} FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schemas} FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON SCHEMA {schemas} FROM {APP_ROLE}")
    # The role is the cluster's: it stays while another database still grants it anything.
    op.execute(
        f"""
        DO $$
        BEGIN
          EXECUTE format('REVOKE ALL ON DATABASE %I FROM {APP_ROLE}', current_database());
        END
        $$
        """
    )
    op.execute(
        f"""
        DO $$
        BEGIN
          DROP ROLE {APP_ROLE};
        EXCEPTION WHEN dependent_objects_still_exist THEN
          RAISE NOTICE 'role {APP_ROLE} kept: other databases still use it';
        END
        $$
        """
    )
