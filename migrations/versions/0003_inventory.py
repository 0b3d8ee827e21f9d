"""Attribute mapping, cleansing, asset inventory and dependencies.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from flowpair_shared.sqlscript import statements

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE orchestrator.flows
  ADD COLUMN mapping_confidence_threshold double precision NOT NULL DEFAULT 0.85
    CHECK (mapping_confidence_threshold > 0 AND mapping_confidence_threshold <= 1);

ALTER TABLE discovery.child_flows
  ADD COLUMN auto_approve boolean NOT NULL DEFAULT false,
  ADD COLUMN confidence_threshold double precision NOT NULL DEFAULT 0.85;

CREATE TABLE discovery.mapping_sets (
  child_flow_id  uuid PRIMARY KEY REFERENCES discovery.child_flows (id) ON DELETE CASCADE,
  version        integer NOT NULL,
  approved_at    timestamptz,
  approved_by    uuid,
  -- Required attributes the data lacks, acknowledged by whoever approved.
  waived         text[] NOT NULL DEFAULT '{}'
);

CREATE TABLE discovery.field_mappings (
  child_flow_id     uuid NOT NULL REFERENCES discovery.child_flows (id) ON DELETE CASCADE,
  position          integer NOT NULL,
  source_column     text NOT NULL,
  target_attribute  text,
  custom_attribute  text,
  confidence        double precision NOT NULL,
  reason            text NOT NULL,
  state             text NOT NULL CHECK (state IN
                      ('suggested', 'ambiguous', 'unmapped', 'approved', 'rejected', 'custom')),
  alternatives      text[] NOT NULL DEFAULT '{}',
  PRIMARY KEY (child_flow_id, position)
);

CREATE TABLE discovery.cleansed_records (
  child_flow_id  uuid NOT NULL,
  row_number     bigint NOT NULL,
  values         jsonb NOT NULL,
  PRIMARY KEY (child_flow_id, row_number)
);

CREATE TABLE discovery.cleansing_issues (
  child_flow_id  uuid NOT NULL,
  row_number     bigint NOT NULL,
  attribute      text NOT NULL,
  value          text NOT NULL,
  problem        text NOT NULL
);
CREATE INDEX cleansing_issues_child ON discovery.cleansing_issues (child_flow_id, row_number);

CREATE TABLE discovery.assets (
  id                    uuid PRIMARY KEY,
  client_account_id     uuid NOT NULL,
  engagement_id         uuid NOT NULL,
  dedupe_key            text NOT NULL,
  asset_type            text NOT NULL CHECK (asset_type IN
                          ('server', 'application', 'database', 'network_device', 'other')),
  display_name          text NOT NULL,
  hostname              text,
  domain                text,
  ip_address            text,
  operating_system      text,
  os_family             text,
  os_version            text,
  cpu_cores             integer,
  memory_gb             double precision,
  storage_gb            double precision,
  environment           text,
  application_name      text,
  owner                 text,
  location              text,
  business_criticality  text,
  serial_number         text,
  attributes            jsonb NOT NULL DEFAULT '{}',
  create_time           timestamptz NOT NULL DEFAULT now(),
  update_time           timestamptz NOT NULL DEFAULT now(),
  UNIQUE (client_account_id, engagement_id, dedupe_key)
);
CREATE INDEX assets_tenant_name
  ON discovery.assets (client_account_id, engagement_id, display_name, id);

CREATE TABLE discovery.asset_sources (
  child_flow_id  uuid NOT NULL,
  row_number     bigint NOT NULL,
  asset_id       uuid NOT NULL REFERENCES discovery.assets (id) ON DELETE CASCADE,
  import_id      uuid NOT NULL,
  PRIMARY KEY (child_flow_id, row_number, asset_id)
);
CREATE INDEX asset_sources_asset ON discovery.asset_sources (asset_id);

CREATE TABLE discovery.dependencies (
  id                 bigserial PRIMARY KEY,
  client_account_id  uuid NOT NULL,
  engagement_id      uuid NOT NULL,
  child_flow_id      uuid NOT NULL,
  source_asset_id    uuid NOT NULL REFERENCES discovery.assets (id) ON DELETE CASCADE,
  target_asset_id    uuid NOT NULL REFERENCES discovery.assets (id) ON DELETE CASCADE,
  kind               text NOT NULL CHECK (kind IN ('runs_on', 'depends_on', 'uses_database')),
  evidence           text NOT NULL,
  UNIQUE (client_account_id, engagement_id, source_asset_id, target_asset_id, kind)
);
CREATE INDEX dependencies_child ON discovery.dependencies (child_flow_id);
"""

DOWNGRADE = """
DROP TABLE discovery.dependencies;
DROP TABLE discovery.asset_sources;
DROP TABLE discovery.assets;
DROP TABLE discovery.cleansing_issues;
DROP TABLE discovery.cleansed_records;
DROP TABLE discovery.field_mappings;
DROP TABLE discovery.mapping_sets;
ALTER TABLE discovery.child_flows DROP COLUMN auto_approve, DROP COLUMN confidence_threshold;
ALTER TABLE orchestrator.flows DROP COLUMN mapping_confidence_threshold;
"""


def upgrade() -> None:
    for statement in statements(UPGRADE):
        op.execute(statement)


def downgrade() -> None:
    for statement in statements(DOWNGRADE):
        op.execute(statement)
