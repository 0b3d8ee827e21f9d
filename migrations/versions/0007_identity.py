"""Asset identity (discovery_svc/domain/identity.py): whether an asset's type and display
name were given by a row or derived, so a derived value never replaces a given one; host keys
carry the domain, so equal short names in different domains are different assets.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

from flowpair_shared.sqlscript import statements

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UPGRADE = """
SELECT set_config('flowpair.scope', 'system', true);
ALTER TABLE discovery.assets
  ADD COLUMN asset_type_given boolean NOT NULL DEFAULT false,
  ADD COLUMN display_name_given boolean NOT NULL DEFAULT false;
ALTER TABLE orchestrator.flows
  ADD COLUMN identity_key smallint NOT NULL DEFAULT 1 CHECK (identity_key BETWEEN 1 AND 3);
ALTER TABLE discovery.child_flows
  ADD COLUMN identity_key smallint NOT NULL DEFAULT 1 CHECK (identity_key BETWEEN 1 AND 3);
UPDATE discovery.assets
  SET dedupe_key = 'host:' || hostname || coalesce('.' || nullif(domain, ''), '')
  WHERE dedupe_key LIKE 'host:%' AND hostname IS NOT NULL;
"""

DOWNGRADE = """
ALTER TABLE orchestrator.flows DROP COLUMN identity_key;
ALTER TABLE discovery.child_flows DROP COLUMN identity_key;
ALTER TABLE discovery.assets
  DROP COLUMN asset_type_given,
  DROP COLUMN display_name_given;
"""


def upgrade() -> None:
    for statement in statements(UPGRADE):
        op.execute(statement)


def downgrade() -> None:
    for statement in statements(DOWNGRADE):
        op.execute(statement)
