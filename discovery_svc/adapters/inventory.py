"""SQL for cleansed records, assets and dependencies: bulk and set-based throughout."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.normalize.asset_types import ASSET_TYPES
from flowpair_shared import db_scope
from flowpair_shared.tenancy import Tenant

BATCH = 5000


async def raw_batches(conn: AsyncConnection, import_id: uuid.UUID) -> AsyncIterator[Sequence[Any]]:
    """The import's raw rows in batches, read through a server-side cursor."""
    result = await conn.stream(
        text(
            "SELECT row_number, values FROM discovery.raw_records WHERE import_id = :id"
            " ORDER BY row_number"
        ),
        {"id": import_id},
    )
    async for partition in result.partitions(BATCH):
        yield partition


async def clear_cleansed(conn: AsyncConnection, child_flow_id: uuid.UUID) -> None:
    for table in ("cleansed_records", "cleansing_issues"):
        await conn.execute(
            text(f"DELETE FROM discovery.{table} WHERE child_flow_id = :child"),
            {"child": child_flow_id},
        )


async def copy_cleansed(
    conn: AsyncConnection,
    rows: list[tuple[uuid.UUID, int, str]],
    issues: list[tuple[uuid.UUID, int, str, str, str]],
) -> None:
    await db_scope.copy_records(
        conn, "discovery.cleansed_records", ["child_flow_id", "row_number", "values"], rows
    )
    await db_scope.copy_records(
        conn,
        "discovery.cleansing_issues",
        ["child_flow_id", "row_number", "attribute", "value", "problem"],
        issues,
    )


async def analyze(conn: AsyncConnection, table: str) -> None:
    """Refresh the planner's statistics of a table this transaction just filled.

    Autovacuum cannot see uncommitted rows, so without this the planner takes a table that
    just gained a million rows for empty and picks nested loops (hours instead of seconds).
    ANALYZE samples a bounded number of rows, and counts this transaction's own inserts.
    """
    await conn.execute(text(f"ANALYZE discovery.{table}"))


def to_json(values: dict[str, object]) -> str:
    return json.dumps(values, separators=(",", ":"))


# -- assets ---------------------------------------------------------------------------------

# One key per cleansed row, in order of precedence: the same host, serial or address seen in
# any flow of the engagement is the same asset. Keys are unique through their md5 (migration
# 0005): a key holds a whole cell, and a B-tree entry cannot hold a long one.
_KEYED = """
  SELECT c.row_number, c.values AS v,
         CASE WHEN c.values->>'hostname' IS NOT NULL THEN 'host:' || (c.values->>'hostname')
              WHEN c.values->>'serial_number' IS NOT NULL
                THEN 'serial:' || lower(c.values->>'serial_number')
              WHEN c.values->>'ip_address' IS NOT NULL THEN 'ip:' || (c.values->>'ip_address')
              WHEN c.values->>'asset_name' IS NOT NULL
                THEN 'name:' || lower(c.values->>'asset_name')
         END AS key,
         lower(coalesce(c.values->>'hostname', c.values->>'asset_name', '')) AS label
  FROM discovery.cleansed_records c WHERE c.child_flow_id = :child
"""

# The row's type was decided by the cleanser (discovery_svc.normalize.asset_types): given
# ("asset_type") or guessed ("asset_type_guess"). Of an asset's rows, a given type beats a
# guess, and then the first in ASSET_TYPES (their precedence) wins.
_TYPE_ORDER = "ARRAY[" + ", ".join(f"'{t}'" for t in ASSET_TYPES) + "]::text[]"
_TYPE = f"""
  (array_agg(coalesce(v->>'asset_type', v->>'asset_type_guess', 'other')
     ORDER BY v->>'asset_type' IS NULL,
              array_position({_TYPE_ORDER}, coalesce(v->>'asset_type', v->>'asset_type_guess'))
  ))[1]
"""

_UPSERT_ASSETS = text(
    f"""
    WITH keyed AS ({_KEYED}),
    merged AS (
      SELECT key, {_TYPE} AS asset_type,
             coalesce(max(v->>'asset_name'), max(v->>'fqdn'), max(v->>'ip_address'),
                      max(v->>'serial_number')) AS display_name,
             max(v->>'hostname') AS hostname, max(v->>'domain') AS domain,
             max(v->>'ip_address') AS ip_address,
             max(v->>'operating_system') AS operating_system,
             max(v->>'os_family') AS os_family, max(v->>'os_version') AS os_version,
             max((v->>'cpu_cores')::int) AS cpu_cores,
             max((v->>'memory_gb')::float8) AS memory_gb,
             max((v->>'storage_gb')::float8) AS storage_gb,
             max(v->>'environment') AS environment,
             max(v->>'application_name') AS application_name,
             max(v->>'owner') AS owner, max(v->>'location') AS location,
             max(v->>'business_criticality') AS business_criticality,
             max(v->>'serial_number') AS serial_number,
             jsonb_strip_nulls(jsonb_build_object(
               'virtualization_platform', max(v->>'virtualization_platform'),
               'department', max(v->>'department'),
               'data_center', max(v->>'data_center'),
               'fqdn', max(v->>'fqdn'))) || coalesce(
               (array_agg(v->'custom') FILTER (WHERE v ? 'custom'))[1], '{{}}') AS attributes
      FROM keyed WHERE key IS NOT NULL GROUP BY key
    )
    INSERT INTO discovery.assets AS a
      (id, client_account_id, engagement_id, dedupe_key, asset_type, display_name, hostname,
       domain, ip_address, operating_system, os_family, os_version, cpu_cores, memory_gb,
       storage_gb, environment, application_name, owner, location, business_criticality,
       serial_number, attributes)
    SELECT gen_random_uuid(), :account, :engagement, key, asset_type, display_name, hostname,
           domain, ip_address, operating_system, os_family, os_version, cpu_cores, memory_gb,
           storage_gb, environment, application_name, owner, location, business_criticality,
           serial_number, attributes
    FROM merged
    ON CONFLICT (client_account_id, engagement_id, md5(dedupe_key)) DO UPDATE SET
      asset_type = EXCLUDED.asset_type,
      display_name = EXCLUDED.display_name,
      hostname = coalesce(EXCLUDED.hostname, a.hostname),
      domain = coalesce(EXCLUDED.domain, a.domain),
      ip_address = coalesce(EXCLUDED.ip_address, a.ip_address),
      operating_system = coalesce(EXCLUDED.operating_system, a.operating_system),
      os_family = coalesce(EXCLUDED.os_family, a.os_family),
      os_version = coalesce(EXCLUDED.os_version, a.os_version),
      cpu_cores = coalesce(EXCLUDED.cpu_cores, a.cpu_cores),
      memory_gb = coalesce(EXCLUDED.memory_gb, a.memory_gb),
      storage_gb = coalesce(EXCLUDED.storage_gb, a.storage_gb),
      environment = coalesce(EXCLUDED.environment, a.environment),
      application_name = coalesce(EXCLUDED.application_name, a.application_name),
      owner = coalesce(EXCLUDED.owner, a.owner),
      location = coalesce(EXCLUDED.location, a.location),
      business_criticality = coalesce(EXCLUDED.business_criticality, a.business_criticality),
      serial_number = coalesce(EXCLUDED.serial_number, a.serial_number),
      attributes = a.attributes || EXCLUDED.attributes,
      update_time = now()
    """
)

_UPSERT_APPLICATIONS = text(
    """
    INSERT INTO discovery.assets AS a
      (id, client_account_id, engagement_id, dedupe_key, asset_type, display_name,
       application_name, environment, business_criticality, owner)
    SELECT gen_random_uuid(), :account, :engagement, 'app:' || lower(v->>'application_name'),
           'application', min(v->>'application_name'), min(v->>'application_name'),
           CASE WHEN count(DISTINCT v->>'environment') = 1 THEN max(v->>'environment') END,
           max(v->>'business_criticality'), max(v->>'owner')
    FROM discovery.cleansed_records c, LATERAL (SELECT c.values AS v) x
    WHERE c.child_flow_id = :child AND v->>'application_name' IS NOT NULL
    GROUP BY lower(v->>'application_name')
    ON CONFLICT (client_account_id, engagement_id, md5(dedupe_key)) DO UPDATE SET
      update_time = now()
    """
)

# Two equi-joins rather than one join on "key IN (a, b)": hash joins whatever the statistics
# of freshly written tables say, where the IN form fell back to a nested loop (quadratic).
_SOURCES = text(
    f"""
    INSERT INTO discovery.asset_sources (child_flow_id, row_number, asset_id, import_id)
    SELECT CAST(:child AS uuid), k.row_number, a.id, CAST(:import_id AS uuid)
    FROM ({_KEYED}) k
    JOIN discovery.assets a ON a.client_account_id = :account
      AND a.engagement_id = :engagement AND a.dedupe_key = k.key
    UNION ALL
    SELECT CAST(:child AS uuid), c.row_number, a.id, CAST(:import_id AS uuid)
    FROM discovery.cleansed_records c
    JOIN discovery.assets a ON a.client_account_id = :account
      AND a.engagement_id = :engagement
      AND a.dedupe_key = 'app:' || lower(c.values->>'application_name')
    WHERE c.child_flow_id = :child
    ON CONFLICT DO NOTHING
    """
)

_UNKEYED = text(
    f"""
    INSERT INTO discovery.cleansing_issues (child_flow_id, row_number, attribute, value, problem)
    SELECT :child, row_number, 'hostname', '',
           'no host name, serial number, IP address or asset name: the row makes no asset'
    FROM ({_KEYED}) k WHERE key IS NULL
      AND NOT EXISTS (SELECT 1 FROM discovery.cleansing_issues i WHERE i.child_flow_id = :child
                      AND i.row_number = k.row_number AND i.problem LIKE 'no host name,%')
    """
)


async def build_assets(
    conn: AsyncConnection, tenant: Tenant, child_flow_id: uuid.UUID, import_id: uuid.UUID
) -> tuple[int, int]:
    """Upsert the flow's assets (replacing its earlier links); (assets linked, rows unkeyed)."""
    params = {
        "child": child_flow_id,
        "account": tenant.client_account_id,
        "engagement": tenant.engagement_id,
        "import_id": import_id,
    }
    await conn.execute(
        text("DELETE FROM discovery.asset_sources WHERE child_flow_id = :child"), params
    )
    await conn.execute(_UPSERT_ASSETS, params)
    await conn.execute(_UPSERT_APPLICATIONS, params)
    await analyze(conn, "assets")
    await conn.execute(_SOURCES, params)
    await analyze(conn, "asset_sources")
    unkeyed = (await conn.execute(_UNKEYED, params)).rowcount
    linked = (
        await conn.execute(
            text(
                "SELECT count(DISTINCT asset_id) FROM discovery.asset_sources"
                " WHERE child_flow_id = :child"
            ),
            params,
        )
    ).scalar_one()
    return int(linked), int(unkeyed)


# -- dependencies ---------------------------------------------------------------------------

_RUNS_ON = text(
    """
    INSERT INTO discovery.dependencies
      (client_account_id, engagement_id, child_flow_id, source_asset_id, target_asset_id, kind,
       evidence)
    SELECT DISTINCT ON (app.id, host.id) :account, :engagement, :child, app.id, host.id,
           CASE WHEN host.asset_type = 'database' THEN 'uses_database' ELSE 'runs_on' END,
           'column application_name of imports/' || :import_text || ' row ' || s.row_number
    FROM discovery.asset_sources s
    JOIN discovery.assets host ON host.id = s.asset_id AND host.asset_type <> 'application'
    JOIN discovery.asset_sources s2 ON s2.child_flow_id = s.child_flow_id
      AND s2.row_number = s.row_number
    JOIN discovery.assets app ON app.id = s2.asset_id AND app.asset_type = 'application'
    WHERE s.child_flow_id = :child
    ORDER BY app.id, host.id, s.row_number
    ON CONFLICT DO NOTHING
    """
)

# Names resolve through one engagement-wide table of (name, asset, rank) joined by equality:
# a host name beats an FQDN, an IP, a display name and an application name, in that order.
# Both sides are MATERIALIZED: inlined, the planner nests the names inside the per-row
# jsonb_array_elements_text and rebuilds them for every row.
_DEPENDS_ON = text(
    """
    WITH wanted AS MATERIALIZED (
      SELECT c.row_number, lower(btrim(t.name)) AS name
      FROM discovery.cleansed_records c,
           jsonb_array_elements_text(c.values->'depends_on') AS t(name)
      WHERE c.child_flow_id = :child AND jsonb_typeof(c.values->'depends_on') = 'array'
    ), engagement AS (
      SELECT * FROM discovery.assets
      WHERE client_account_id = :account AND engagement_id = :engagement
    ), names AS MATERIALIZED (
      SELECT hostname AS name, id, asset_type, 1 AS rank FROM engagement
        WHERE hostname IS NOT NULL
      UNION ALL SELECT attributes->>'fqdn', id, asset_type, 2 FROM engagement
        WHERE attributes ? 'fqdn'
      UNION ALL SELECT ip_address, id, asset_type, 3 FROM engagement
        WHERE ip_address IS NOT NULL
      UNION ALL SELECT lower(display_name), id, asset_type, 4 FROM engagement
      UNION ALL SELECT substr(dedupe_key, 5), id, asset_type, 5 FROM engagement
        WHERE dedupe_key LIKE 'app:%'
    ), sources AS (
      SELECT w.row_number, w.name, src.asset_id AS source_id
      FROM wanted w
      JOIN discovery.asset_sources src ON src.child_flow_id = :child
        AND src.row_number = w.row_number
      JOIN discovery.assets s ON s.id = src.asset_id AND s.asset_type <> 'application'
    ), resolved AS (
      SELECT DISTINCT ON (x.row_number, x.name, x.source_id)
             x.row_number, x.name, x.source_id, n.id AS target_id, n.asset_type AS target_type
      FROM sources x LEFT JOIN names n ON n.name = x.name
      ORDER BY x.row_number, x.name, x.source_id, n.rank
    ), issues AS (
      INSERT INTO discovery.cleansing_issues
        (child_flow_id, row_number, attribute, value, problem)
      SELECT DISTINCT :child, row_number, 'depends_on', name,
             'no asset of the engagement is named "' || name || '"'
      FROM resolved WHERE target_id IS NULL
      RETURNING 1
    )
    INSERT INTO discovery.dependencies
      (client_account_id, engagement_id, child_flow_id, source_asset_id, target_asset_id, kind,
       evidence)
    SELECT DISTINCT ON (source_id, target_id) :account, :engagement, :child, source_id,
           target_id,
           CASE WHEN target_type = 'database' THEN 'uses_database' ELSE 'depends_on' END,
           'column depends_on of imports/' || :import_text || ' row ' || row_number
    FROM resolved WHERE target_id IS NOT NULL AND target_id <> source_id
    ORDER BY source_id, target_id, row_number
    ON CONFLICT DO NOTHING
    """
)


async def build_dependencies(
    conn: AsyncConnection, tenant: Tenant, child_flow_id: uuid.UUID, import_id: uuid.UUID
) -> int:
    """Derive the flow's dependencies (replacing its earlier ones); how many it has."""
    params = {
        "child": child_flow_id,
        "account": tenant.client_account_id,
        "engagement": tenant.engagement_id,
        "import_text": str(import_id),
    }
    await conn.execute(
        text("DELETE FROM discovery.dependencies WHERE child_flow_id = :child"), params
    )
    await conn.execute(
        text(
            "DELETE FROM discovery.cleansing_issues WHERE child_flow_id = :child"
            " AND attribute = 'depends_on' AND problem LIKE 'no asset of the engagement%'"
        ),
        params,
    )
    await conn.execute(_RUNS_ON, params)
    await conn.execute(_DEPENDS_ON, params)
    count = (
        await conn.execute(
            text("SELECT count(*) FROM discovery.dependencies WHERE child_flow_id = :child"),
            params,
        )
    ).scalar_one()
    return int(count)
