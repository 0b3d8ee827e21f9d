"""Phase engine: lifecycle history, phase jobs, imports and raw records, data profiles.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from flowpair_shared.sqlscript import statements

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE orchestrator.flows
  ADD COLUMN import_id uuid,
  ADD COLUMN paused_by uuid;
CREATE INDEX flows_tenant_status ON orchestrator.flows (client_account_id, engagement_id, status);

ALTER TABLE orchestrator.flow_events
  ADD COLUMN kind smallint NOT NULL DEFAULT 2 CHECK (kind BETWEEN 1 AND 6),
  ADD COLUMN actor uuid,
  ADD COLUMN reason text CHECK (length(reason) <= 500),
  ALTER COLUMN phase DROP NOT NULL,
  ALTER COLUMN phase_status DROP NOT NULL;
ALTER TABLE orchestrator.flow_events ALTER COLUMN kind DROP DEFAULT;

ALTER TABLE discovery.child_flows ADD COLUMN import_id uuid;

-- Durable phase work: a job survives a crash of the process running it; an expired lease
-- lets another process (or the restarted one) take it over.
CREATE TABLE discovery.phase_jobs (
  id             bigserial PRIMARY KEY,
  child_flow_id  uuid NOT NULL REFERENCES discovery.child_flows (id) ON DELETE CASCADE,
  phase          smallint NOT NULL CHECK (phase BETWEEN 1 AND 7),
  state          text NOT NULL CHECK (state IN ('queued', 'running', 'done', 'cancelled')),
  attempts       integer NOT NULL DEFAULT 0,
  lease_until    timestamptz,
  created_at     timestamptz NOT NULL DEFAULT now(),
  finished_at    timestamptz
);
CREATE UNIQUE INDEX phase_jobs_one_active ON discovery.phase_jobs (child_flow_id, phase)
  WHERE state IN ('queued', 'running');
CREATE INDEX phase_jobs_claimable ON discovery.phase_jobs (created_at)
  WHERE state IN ('queued', 'running');

CREATE TABLE discovery.imports (
  id                  uuid PRIMARY KEY,
  client_account_id   uuid NOT NULL,
  engagement_id       uuid NOT NULL,
  create_user         uuid NOT NULL,
  file_name           text NOT NULL DEFAULT '' CHECK (length(file_name) <= 255),
  columns             text[] NOT NULL,
  delimiter           text NOT NULL,
  had_bom             boolean NOT NULL,
  row_count           bigint NOT NULL,
  quarantined_count   bigint NOT NULL,
  byte_count          bigint NOT NULL,
  create_time         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX imports_tenant ON discovery.imports (client_account_id, engagement_id);

-- Written by COPY in the upload's transaction; `values` follows the import's `columns`.
CREATE TABLE discovery.raw_records (
  import_id    uuid NOT NULL,
  row_number   bigint NOT NULL,
  line_number  bigint NOT NULL,
  values       text[] NOT NULL,
  PRIMARY KEY (import_id, row_number)
);

CREATE TABLE discovery.quarantined_rows (
  import_id    uuid NOT NULL,
  line_number  bigint NOT NULL,
  reason       text NOT NULL,
  excerpt      text NOT NULL,
  PRIMARY KEY (import_id, line_number)
);

CREATE TABLE discovery.data_profiles (
  child_flow_id   uuid PRIMARY KEY REFERENCES discovery.child_flows (id) ON DELETE CASCADE,
  import_id       uuid NOT NULL,
  row_count       bigint NOT NULL,
  columns         jsonb NOT NULL,
  duplicate_keys  jsonb NOT NULL,
  flags           jsonb NOT NULL,
  create_time     timestamptz NOT NULL DEFAULT now()
);
"""

DOWNGRADE = """
DROP TABLE discovery.data_profiles;
DROP TABLE discovery.quarantined_rows;
DROP TABLE discovery.raw_records;
DROP TABLE discovery.imports;
DROP TABLE discovery.phase_jobs;
ALTER TABLE discovery.child_flows DROP COLUMN import_id;
DELETE FROM orchestrator.flow_events WHERE kind <> 2;
ALTER TABLE orchestrator.flow_events DROP COLUMN kind, DROP COLUMN actor, DROP COLUMN reason,
  ALTER COLUMN phase SET NOT NULL, ALTER COLUMN phase_status SET NOT NULL;
DROP INDEX orchestrator.flows_tenant_status;
ALTER TABLE orchestrator.flows DROP COLUMN import_id, DROP COLUMN paused_by;
"""


def upgrade() -> None:
    for statement in statements(UPGRADE):
        op.execute(statement)


def downgrade() -> None:
    for statement in statements(DOWNGRADE):
        op.execute(statement)
