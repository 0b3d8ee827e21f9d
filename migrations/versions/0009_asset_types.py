"""Asset types from a real vocabulary (discovery_svc/vocab/asset_types.json): virtual
machines, storage, end-user computers and software join server, application, database,
network device and other.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

from flowpair_shared.sqlscript import statements

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_OLD = ("server", "application", "database", "network_device", "other")
_NEW = (*_OLD, "virtual_machine", "storage", "end_user_computer", "software")

_CHECK = """
SELECT set_config('flowpair.scope', 'system', true);
ALTER TABLE discovery.assets DROP CONSTRAINT assets_asset_type_check;
{narrow}
ALTER TABLE discovery.assets ADD CONSTRAINT assets_asset_type_check
  CHECK (asset_type IN ({types}));
"""
# A downgrade keeps the rows: the new kinds become what the old rules called them.
_NARROW = """
UPDATE discovery.assets SET asset_type = CASE asset_type
  WHEN 'virtual_machine' THEN 'server' WHEN 'end_user_computer' THEN 'server'
  ELSE 'other' END
WHERE asset_type IN ('virtual_machine', 'storage', 'end_user_computer', 'software');
"""


def _script(types: tuple[str, ...], narrow: str = "") -> str:
    return _CHECK.format(types=", ".join(f"'{t}'" for t in types), narrow=narrow)


def upgrade() -> None:
    for statement in statements(_script(_NEW)):
        op.execute(statement)


def downgrade() -> None:
    for statement in statements(_script(_OLD, _NARROW)):
        op.execute(statement)
