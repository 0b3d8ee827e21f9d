"""Foundation: orchestrator and discovery schemas, shared outbox and inbox.

Revision ID: 0001
Revises:
"""

from alembic import op

from flowpair_shared.sqlscript import statements

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Enum columns hold the protobuf enum numbers (smallint); CHECK constraints keep them in range
# so an unknown value can never be stored.
UPGRADE = """
CREATE SCHEMA IF NOT EXISTS messaging;
CREATE SCHEMA IF NOT EXISTS orchestrator;
CREATE SCHEMA IF NOT EXISTS discovery;

CREATE TABLE messaging.outbox (
  id            bigserial PRIMARY KEY,
  message_id    uuid NOT NULL UNIQUE,
  source        text NOT NULL,
  destination   text NOT NULL,
  method        text NOT NULL,
  message_type  text NOT NULL,
  ordering_key  uuid NOT NULL,
  seq           bigint NOT NULL,
  payload       bytea NOT NULL,
  headers       jsonb NOT NULL DEFAULT '{}',
  created_at    timestamptz NOT NULL DEFAULT now(),
  available_at  timestamptz NOT NULL DEFAULT now(),
  attempts      integer NOT NULL DEFAULT 0,
  rejections    integer NOT NULL DEFAULT 0,
  last_error    text,
  delivered_at  timestamptz,
  parked_at     timestamptz,
  UNIQUE (source, ordering_key, seq)
);
CREATE INDEX outbox_pending ON messaging.outbox (source, ordering_key, seq)
  WHERE delivered_at IS NULL;
CREATE INDEX outbox_parked ON messaging.outbox (parked_at) WHERE parked_at IS NOT NULL;

CREATE TABLE messaging.outbox_sequences (
  source        text NOT NULL,
  ordering_key  uuid NOT NULL,
  last_seq      bigint NOT NULL,
  PRIMARY KEY (source, ordering_key)
);

CREATE TABLE messaging.inbox (
  consumer      text NOT NULL,
  message_id    uuid NOT NULL,
  received_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, message_id)
);

CREATE TABLE orchestrator.flows (
  id                  uuid PRIMARY KEY,
  client_account_id   uuid NOT NULL,
  engagement_id       uuid NOT NULL,
  create_user         uuid NOT NULL,
  request_id          uuid,
  flow_type           smallint NOT NULL CHECK (flow_type BETWEEN 1 AND 1),
  display_name        text NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
  auto_approve        boolean NOT NULL DEFAULT false,
  status              smallint NOT NULL CHECK (status BETWEEN 1 AND 7),
  current_phase       smallint NOT NULL CHECK (current_phase BETWEEN 1 AND 7),
  child_flow_id       uuid,
  last_event_seq      bigint NOT NULL DEFAULT 0,
  history_seq         bigint NOT NULL DEFAULT 0,
  create_time         timestamptz NOT NULL DEFAULT now(),
  update_time         timestamptz NOT NULL DEFAULT now(),
  UNIQUE (client_account_id, engagement_id, request_id)
);
CREATE INDEX flows_tenant_created
  ON orchestrator.flows (client_account_id, engagement_id, create_time DESC, id DESC);

CREATE TABLE orchestrator.flow_phases (
  flow_id       uuid NOT NULL REFERENCES orchestrator.flows (id) ON DELETE CASCADE,
  phase         smallint NOT NULL CHECK (phase BETWEEN 1 AND 7),
  status        smallint NOT NULL CHECK (status BETWEEN 1 AND 6),
  error_reason  text,
  error_message text,
  update_time   timestamptz,
  PRIMARY KEY (flow_id, phase)
);

-- Every transition of a master flow, in per-flow order.
CREATE TABLE orchestrator.flow_events (
  flow_id         uuid NOT NULL REFERENCES orchestrator.flows (id) ON DELETE CASCADE,
  seq             bigint NOT NULL,
  phase           smallint NOT NULL,
  phase_status    smallint NOT NULL,
  flow_status     smallint NOT NULL,
  source_sequence bigint,
  error_reason    text,
  error_message   text,
  occur_time      timestamptz NOT NULL,
  record_time     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (flow_id, seq),
  UNIQUE (flow_id, source_sequence)
);

CREATE TABLE discovery.child_flows (
  id                  uuid PRIMARY KEY,
  master_flow_id      uuid NOT NULL UNIQUE,
  client_account_id   uuid NOT NULL,
  engagement_id       uuid NOT NULL,
  create_user         uuid NOT NULL,
  flow_type           smallint NOT NULL CHECK (flow_type BETWEEN 1 AND 1),
  display_name        text NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
  status              smallint NOT NULL CHECK (status BETWEEN 1 AND 7),
  event_seq           bigint NOT NULL DEFAULT 0,
  create_time         timestamptz NOT NULL DEFAULT now(),
  update_time         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE discovery.child_phases (
  child_flow_id uuid NOT NULL REFERENCES discovery.child_flows (id) ON DELETE CASCADE,
  phase         smallint NOT NULL CHECK (phase BETWEEN 1 AND 7),
  status        smallint NOT NULL CHECK (status BETWEEN 1 AND 6),
  error_reason  text,
  error_message text,
  update_time   timestamptz,
  PRIMARY KEY (child_flow_id, phase)
);
"""

DOWNGRADE = """
DROP SCHEMA discovery CASCADE;
DROP SCHEMA orchestrator CASCADE;
DROP SCHEMA messaging CASCADE;
"""


def upgrade() -> None:
    for statement in statements(UPGRADE):
        op.execute(statement)


def downgrade() -> None:
    for statement in statements(DOWNGRADE):
        op.execute(statement)
