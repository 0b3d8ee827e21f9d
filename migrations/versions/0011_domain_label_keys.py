"""Host identity keys by the domain's first label: ``host:web01.corp`` for a host in
``corp.example.com``, so a NetBIOS domain (``CORP``) and its DNS domain key one asset in any
order. Existing host assets are re-keyed; where two would take one key (equal short names in
two DNS trees with one first label), the later keeps its old key and stays apart.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

from flowpair_shared.sqlscript import statements

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_REKEY = """
SELECT set_config('flowpair.scope', 'system', true);
WITH wanted AS (
  SELECT id, client_account_id, engagement_id,
         'host:' || hostname || '.' || split_part(domain, '.', 1) AS key,
         row_number() OVER (
           PARTITION BY client_account_id, engagement_id,
                        'host:' || hostname || '.' || split_part(domain, '.', 1)
           ORDER BY create_time, id) AS n
  FROM discovery.assets
  WHERE dedupe_key LIKE 'host:%' AND hostname IS NOT NULL AND strpos(domain, '.') > 0
)
UPDATE discovery.assets a SET dedupe_key = w.key
FROM wanted w
WHERE a.id = w.id AND w.n = 1 AND a.dedupe_key <> w.key
  AND NOT EXISTS (SELECT 1 FROM discovery.assets b
                  WHERE b.client_account_id = w.client_account_id
                    AND b.engagement_id = w.engagement_id AND b.dedupe_key = w.key);
"""

_RESTORE = """
SELECT set_config('flowpair.scope', 'system', true);
UPDATE discovery.assets SET dedupe_key = 'host:' || hostname || '.' || domain
WHERE dedupe_key LIKE 'host:%' AND hostname IS NOT NULL AND strpos(domain, '.') > 0
  AND dedupe_key = 'host:' || hostname || '.' || split_part(domain, '.', 1);
"""


def upgrade() -> None:
    for statement in statements(_REKEY):
        op.execute(statement)


def downgrade() -> None:
    for statement in statements(_RESTORE):
        op.execute(statement)
