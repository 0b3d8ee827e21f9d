"""SQL for cleansed records, assets and dependencies: bulk and set-based throughout."""

from __future__ import annotations

import uuid

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.domain import identity
from discovery_svc.domain.cleansing import PLACEHOLDER_NAME, CleansedBatch
from discovery_svc.normalize.asset_types import ASSET_TYPES
from flowpair_shared import db_scope
from flowpair_shared.tenancy import Tenant

BATCH = 5000

WORK_MEM = "256MB"
"""Memory per sort or hash of the phases' big statements: at the default 4MB, merging a
million rows by key and joining them to their assets spill to disk in many passes."""


async def more_work_mem(conn: AsyncConnection) -> None:
    """Raise ``work_mem`` for the rest of the phase's transaction (SET LOCAL), and turn JIT
    off: the set-based statements of a phase are long expressions run once, and auto_explain
    on ASSET_INVENTORY at 200,000 rows showed 7.1 s of a 66 s statement spent compiling them."""
    await conn.execute(
        text(f"SELECT set_config('work_mem', '{WORK_MEM}', true), set_config('jit', 'off', true)")
    )


async def clear_cleansed(conn: AsyncConnection, child_flow_id: uuid.UUID) -> None:
    for table in ("cleansed_records", "cleansing_issues"):
        await conn.execute(
            text(f"DELETE FROM discovery.{table} WHERE child_flow_id = :child"),
            {"child": child_flow_id},
        )


async def copy_cleansed(
    conn: AsyncConnection, child_flow_id: uuid.UUID, batch: CleansedBatch
) -> None:
    """Write one page of the cleansing phase's output."""
    await db_scope.copy_records(
        conn,
        "discovery.cleansed_records",
        ["child_flow_id", "row_number", "values"],
        [(child_flow_id, n, values) for n, values in batch.rows],
    )
    await db_scope.copy_records(
        conn,
        "discovery.cleansing_issues",
        ["child_flow_id", "row_number", "attribute", "value", "problem"],
        [(child_flow_id, *issue) for issue in batch.issues],
    )


async def analyze(conn: AsyncConnection, table: str) -> None:
    """Refresh the planner's statistics of a table this transaction just filled.

    Autovacuum cannot see uncommitted rows, so without this the planner takes a table that
    just gained a million rows for empty and picks nested loops (hours instead of seconds).
    ANALYZE samples a bounded number of rows, and counts this transaction's own inserts. The
    services' role may not ANALYZE (only the owner may), so a narrow function does it.
    """
    await conn.execute(text("SELECT discovery.analyze_fresh(:table)"), {"table": table})


# -- assets ---------------------------------------------------------------------------------

# The rules are discovery_svc/domain/identity.py's docstring; this is their SQL. One statement
# keys the flow's rows, merges each key's rows by rank, upserts the assets, links the rows and
# writes the identity issues. Keys are unique through their md5 (migration 0005): a key holds a
# whole cell, and a B-tree entry cannot hold a long one.

_NORM = identity.SQL_NORMALIZE
_NOT_PLACEHOLDER = (
    f"NOT ({{}} = ANY(CAST(:placeholders AS text[]))) AND {{}} !~ '{identity.SQL_ABBREVIATION}'"
)


def _named(expr: str) -> str:
    """``expr`` when it is present and not a placeholder, else NULL."""
    check = _NOT_PLACEHOLDER.format(_NORM.format(expr), f"btrim({expr})")
    return f"CASE WHEN {expr} IS NOT NULL AND {check} THEN {expr} END"


# A rejected host cell (spaces, odd characters) is still a name, unless it is an IP address,
# a placeholder, or was cut short in the issue (a name that long is another column's text).
_REJECTED_HOSTS = rf"""
  SELECT DISTINCT ON (i.row_number) i.row_number, btrim(i.value) AS written,
         lower(regexp_replace(btrim(i.value), '\s+', ' ', 'g')) AS name
  FROM discovery.cleansing_issues i
  WHERE i.child_flow_id = :child AND i.attribute = 'hostname'
    AND i.problem NOT LIKE '{identity.ISSUE_PREFIX}%' AND length(i.value) < 200
    AND btrim(i.value) !~ '^[0-9]{{1,3}}(\.[0-9]{{1,3}}){{3}}(/[0-9]+)?$'
    AND btrim(i.value) !~* '^[0-9a-f]*:[0-9a-f:.]*(/[0-9]+)?$'
    AND {_NOT_PLACEHOLDER.format(_NORM.format("i.value"), "btrim(i.value)")}
  ORDER BY i.row_number
"""

_ROWS = f"""
  rows AS MATERIALIZED (
    SELECT c.row_number, c.values AS v, {_named("c.values->>'hostname'")} AS short,
           nullif(c.values->>'domain', '') AS domain, bad.name AS bad_host,
           bad.written AS bad_written,
           lower({_named("c.values->>'asset_name'")}) AS name,
           lower({_named("c.values->>'asset_tag'")}) AS tag,
           lower(c.values->>'serial_number') AS serial, c.values->>'ip_address' AS ip,
           (SELECT count(*) FROM jsonb_object_keys(c.values) k
            WHERE k <> '{PLACEHOLDER_NAME}') AS completeness
    FROM discovery.cleansed_records c
    LEFT JOIN ({_REJECTED_HOSTS}) bad ON bad.row_number = c.row_number
    WHERE c.child_flow_id = :child
  ), domains AS (
    -- Domains compare by their first label, so a NetBIOS domain ("CORP") and the DNS domain
    -- it starts ("corp.example.com") are one, in whichever order flows bring them.
    SELECT short, (array_agg(domain ORDER BY strpos(domain, '.') > 0 DESC, domain))[1] AS domain,
           count(DISTINCT split_part(domain, '.', 1)) AS n,
           string_agg(DISTINCT domain, ', ') AS listed
    FROM (SELECT short, domain FROM rows WHERE short IS NOT NULL AND domain IS NOT NULL
          UNION
          SELECT hostname, domain FROM discovery.assets
          WHERE client_account_id = :account AND engagement_id = :engagement
            AND dedupe_key LIKE 'host:%' AND hostname IS NOT NULL AND domain <> '') d
    GROUP BY short
  ), resolved AS (
    SELECT r.*,
           CASE WHEN strpos(r.domain, '.') = 0 AND split_part(d.domain, '.', 1) = r.domain
                THEN d.domain
                ELSE coalesce(r.domain, CASE WHEN d.n = 1 THEN d.domain END) END AS host_domain,
           r.short IS NOT NULL AND r.domain IS NULL AND d.n > 1 AS ambiguous, d.listed
    FROM rows r LEFT JOIN domains d ON d.short = r.short
  ), named AS (
    SELECT *, coalesce('host:' || short || coalesce('.' || split_part(host_domain, '.', 1), ''),
                       'host:' || bad_host, 'name:' || name, 'tag:' || tag) AS name_key
    FROM resolved
  ), keyed AS (
    SELECT *, coalesce({{key}}, 'serial:' || serial, 'ip:' || ip) AS key FROM named
  ), ranked AS MATERIALIZED (
    SELECT *, row_number() OVER (PARTITION BY key ORDER BY completeness DESC, row_number DESC)
           AS rank, count(*) OVER (PARTITION BY key) AS n
    FROM keyed WHERE key IS NOT NULL
  )
"""

_KEYS = {
    identity.IdentityKey.HOST_THEN_NAME: "name_key",
    identity.IdentityKey.NAME_AND_SERIAL: "name_key || coalesce('|serial:' || serial, '')",
    identity.IdentityKey.NAME_AND_TAG: "name_key || coalesce('|tag:' || tag, '')",
}

# The row's type was decided by the cleanser (discovery_svc.normalize.asset_types): given
# ("asset_type") or guessed ("asset_type_guess"); a host name the cleanser rejected but the
# inventory keeps still makes a server. Of an asset's rows, a given type beats a guess, then
# the first in ASSET_TYPES (their precedence: a host listed as database and as VM is a
# database), then the best-ranked row.
_TYPE_ORDER = "ARRAY[" + ", ".join(f"'{t}'" for t in ASSET_TYPES) + "]::text[]"
_TYPE = """
  coalesce(v->>'asset_type',
           CASE WHEN bad_host IS NOT NULL AND coalesce(v->>'asset_type_guess', 'other') = 'other'
                THEN 'server' END,
           v->>'asset_type_guess', 'other')
"""

# (column, value of a row, comparable form for conflicts or None when values may differ)
_FIELDS: tuple[tuple[str, str, str | None], ...] = (
    ("hostname", "coalesce(short, bad_host)", None),
    ("domain", "host_domain", None),
    ("ip_address", "v->>'ip_address'", None),
    ("operating_system", "v->>'operating_system'", "lower(v->>'operating_system')"),
    ("os_family", "v->>'os_family'", None),
    ("os_version", "v->>'os_version'", None),
    ("cpu_cores", "(v->>'cpu_cores')::int", "(v->>'cpu_cores')::int"),
    ("memory_gb", "(v->>'memory_gb')::float8", "(v->>'memory_gb')::float8"),
    ("storage_gb", "(v->>'storage_gb')::float8", "(v->>'storage_gb')::float8"),
    ("environment", "v->>'environment'", "v->>'environment'"),
    ("application_name", "v->>'application_name'", None),
    ("owner", "v->>'owner'", "lower(v->>'owner')"),
    ("location", "v->>'location'", "lower(v->>'location')"),
    ("business_criticality", "v->>'business_criticality'", "v->>'business_criticality'"),
    ("serial_number", "v->>'serial_number'", "serial"),
)
# Conflicts also compare what is not a column of its own.
_COMPARED = (
    *((f, f"v->>'{f}'", c) for f, _, c in _FIELDS if c is not None),
    ("asset_name", "v->>'asset_name'", "name"),
    ("asset_type", "v->>'asset_type'", "v->>'asset_type'"),
)
_ATTRIBUTES = ("virtualization_platform", "department", "data_center", "fqdn")


def _first(expr: str) -> str:
    """The value of the best-ranked row that has one."""
    return f"(array_agg({expr} ORDER BY rank) FILTER (WHERE {expr} IS NOT NULL))[1]"


def _itself(expr: str) -> str:
    return expr


def _merged(single: bool) -> str:
    """Each key's asset from its rows: by aggregates over several rows, or (``single``) as the
    key's one row says, which is most keys of a large export; aggregating a million one-row
    groups took a fifth of ASSET_INVENTORY at 200,000 rows."""
    first = _itself if single else _first
    best_type = (
        "type"
        if single
        else f"(array_agg(type ORDER BY v->>'asset_type' IS NULL,"
        f" array_position({_TYPE_ORDER}, type), rank))[1]"
    )
    attribute_pairs = ", ".join(f"'{a}', " + first(f"v->>'{a}'") for a in _ATTRIBUTES)
    return f"""
    SELECT key, {best_type} AS asset_type,
           {"v ? 'asset_type'" if single else "bool_or(v ? 'asset_type')"} AS asset_type_given,
           coalesce({first(_named("v->>'asset_name'"))}, {first("v->>'fqdn'")},
                    {first("bad_written")}, {first("v->>'asset_tag'")},
                    {first("v->>'serial_number'")}, {first("ip")}) AS display_name,
           {"name IS NOT NULL" if single else "bool_or(name IS NOT NULL)"} AS display_name_given,
           {", ".join(f"{first(expr)} AS {column}" for column, expr, _ in _FIELDS)},
           jsonb_strip_nulls(jsonb_build_object({attribute_pairs}))
           || coalesce({first("v->'custom'")}, '{{}}') AS attributes
    FROM (SELECT *, {_TYPE} AS type FROM ranked WHERE n {"=" if single else ">"} 1) t
    {"" if single else "GROUP BY key"}
    """


_MERGED = f"merged AS ({_merged(single=False)} UNION ALL {_merged(single=True)})"

# A NetBIOS domain ("corp") never replaces the DNS domain it starts ("corp.example.com").
_KEEP = {
    "domain": "domain = CASE WHEN strpos(a.domain, '.') > 0 AND strpos(EXCLUDED.domain, '.') = 0"
    " AND split_part(a.domain, '.', 1) = EXCLUDED.domain THEN a.domain"
    " ELSE coalesce(EXCLUDED.domain, a.domain) END"
}

_COLUMNS = (
    "asset_type",
    "asset_type_given",
    "display_name",
    "display_name_given",
    *(column for column, _, _ in _FIELDS),
)

_UPSERT = f"""
  upserted AS (
    INSERT INTO discovery.assets AS a
      (id, client_account_id, engagement_id, dedupe_key, {", ".join(_COLUMNS)}, attributes)
    SELECT gen_random_uuid(), :account, :engagement, key, {", ".join(_COLUMNS)}, attributes
    FROM merged
    ON CONFLICT (client_account_id, engagement_id, md5(dedupe_key)) DO UPDATE SET
      asset_type = CASE WHEN EXCLUDED.asset_type_given OR NOT a.asset_type_given
                        THEN EXCLUDED.asset_type ELSE a.asset_type END,
      asset_type_given = a.asset_type_given OR EXCLUDED.asset_type_given,
      display_name = CASE WHEN EXCLUDED.display_name_given OR NOT a.display_name_given
                          THEN EXCLUDED.display_name ELSE a.display_name END,
      display_name_given = a.display_name_given OR EXCLUDED.display_name_given,
      {", ".join(_KEEP.get(c, f"{c} = coalesce(EXCLUDED.{c}, a.{c})") for c, _, _ in _FIELDS)},
      attributes = a.attributes || EXCLUDED.attributes,
      update_time = now()
    RETURNING id, dedupe_key
  ), linked AS (
    INSERT INTO discovery.asset_sources (child_flow_id, row_number, asset_id, import_id)
    SELECT CAST(:child AS uuid), r.row_number, u.id, CAST(:import_id AS uuid)
    FROM ranked r JOIN upserted u ON u.dedupe_key = r.key
    ON CONFLICT DO NOTHING
  )
"""

_P = identity.ISSUE_PREFIX


def _chosen(i: int, value: str, compared: str) -> str:
    """The value a field takes, its comparable form and its row, as c{i}, x{i} and r{i}."""
    return (
        f"{_first(value)} AS c{i}, {_first(f'({compared})::text')} AS x{i},"
        f" (array_agg(row_number ORDER BY rank) FILTER (WHERE {compared} IS NOT NULL))[1]"
        f" AS r{i}"
    )


# One pass over the rows of keys with several rows (a key's only row differs from nothing),
# each field unpivoted beside the value its asset took: a window per field would sort every
# row once per field.
_CONFLICTS = f"""
    SELECT r.row_number, f.attribute, f.val,
           '{_P}differs from "' || f.chosen || '" in row ' || f.chosen_row || ', which the'
           || ' asset takes (the most complete row, then the latest)'
    FROM ranked r
    JOIN (SELECT key, {", ".join(_chosen(i, v, c) for i, (_, v, c) in enumerate(_COMPARED))}
          FROM ranked WHERE n > 1 GROUP BY key) c ON c.key = r.key AND r.n > 1
    CROSS JOIN LATERAL (VALUES {
    ", ".join(
        f"('{a}', {v}, ({c})::text, c.c{i}, c.x{i}, c.r{i})"
        for i, (a, v, c) in enumerate(_COMPARED)
    )
}) f(attribute, val, x, chosen, chosen_x, chosen_row)
    WHERE f.x IS NOT NULL AND f.x IS DISTINCT FROM f.chosen_x
"""


def _shared(attribute: str, column: str, what: str) -> str:
    return f"""
    SELECT r.row_number, '{attribute}', v->>'{attribute}',
           '{_P}{what} also on ' || s.n - 1 || ' other asset(s) of another name in this flow:'
           || ' kept apart (a {what} is evidence, not identity)'
    FROM ranked r JOIN (SELECT {column}, count(DISTINCT key) AS n FROM ranked
                        WHERE {column} IS NOT NULL GROUP BY {column}
                        HAVING count(DISTINCT key) > 1) s ON s.{column} = r.{column}
    """


_ISSUES = f"""
  issues AS (
    INSERT INTO discovery.cleansing_issues
      (child_flow_id, row_number, attribute, value, kind, problem)
    SELECT :child, row_number, attribute, left(value, 200),
           CASE WHEN problem LIKE '%the row makes no asset' THEN 'row_without_asset'
                ELSE 'identity' END,
           problem
    FROM (
      {_CONFLICTS}
      UNION ALL {_shared("serial_number", "serial", "serial number")}
      UNION ALL {_shared("ip_address", "ip", "IP address")}
      UNION ALL
      SELECT row_number, 'hostname', v->>'hostname',
             '{_P}a placeholder name: it identifies no asset'
      FROM keyed WHERE v->>'hostname' IS NOT NULL AND short IS NULL
      UNION ALL
      SELECT row_number, 'asset_name', v->>'asset_name',
             '{_P}a placeholder name: it identifies no asset'
      FROM keyed WHERE v->>'asset_name' IS NOT NULL AND name IS NULL
        AND lower(v->>'asset_name') IS DISTINCT FROM lower(v->>'hostname')
      UNION ALL
      SELECT row_number, 'asset_name', v->>'{PLACEHOLDER_NAME}',
             '{_P}a placeholder name: it identifies no asset; the row is an asset by its '
             || CASE WHEN key LIKE 'serial:%' THEN 'serial number'
                     WHEN key LIKE 'ip:%' THEN 'IP address' ELSE 'other name' END
      FROM keyed WHERE v->>'{PLACEHOLDER_NAME}' IS NOT NULL AND key IS NOT NULL
      UNION ALL
      SELECT row_number, 'hostname', bad_written,
             '{_P}kept as written: the name still identifies the asset'
      FROM keyed WHERE bad_host IS NOT NULL AND short IS NULL
      UNION ALL
      SELECT row_number, 'hostname', v->>'hostname',
             '{_P}the short name is in several domains (' || listed || '): this row, without'
             || ' a domain, is an asset of its own'
      FROM keyed WHERE ambiguous
      UNION ALL
      SELECT row_number, 'hostname', '',
             '{_P}no host name, asset name, asset tag, serial number or IP address:'
             || ' the row makes no asset'
      FROM keyed WHERE key IS NULL AND v->>'application_name' IS NULL
    ) i(row_number, attribute, value, problem)
  )
"""


def _upsert_assets(key: identity.IdentityKey) -> TextClause:
    return text(
        f"WITH {_ROWS.replace('{key}', _KEYS[key])}, {_MERGED}, {_UPSERT}, {_ISSUES}"
        " SELECT count(*) FROM upserted"
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
_APPLICATION_SOURCES = text(
    """
    INSERT INTO discovery.asset_sources (child_flow_id, row_number, asset_id, import_id)
    SELECT CAST(:child AS uuid), c.row_number, a.id, CAST(:import_id AS uuid)
    FROM discovery.cleansed_records c
    JOIN discovery.assets a ON a.client_account_id = :account
      AND a.engagement_id = :engagement
      AND a.dedupe_key = 'app:' || lower(c.values->>'application_name')
    WHERE c.child_flow_id = :child
    ON CONFLICT DO NOTHING
    """
)


async def build_assets(
    conn: AsyncConnection,
    tenant: Tenant,
    child_flow_id: uuid.UUID,
    import_id: uuid.UUID,
    key: identity.IdentityKey = identity.IdentityKey.HOST_THEN_NAME,
) -> tuple[int, int]:
    """Upsert the flow's assets (replacing its earlier links and identity issues).

    Returns (assets linked, rows that made no asset).
    """
    params = {
        "child": child_flow_id,
        "account": tenant.client_account_id,
        "engagement": tenant.engagement_id,
        "import_id": import_id,
        "placeholders": sorted(identity.placeholder_names()),
    }
    await more_work_mem(conn)
    await conn.execute(
        text("DELETE FROM discovery.asset_sources WHERE child_flow_id = :child"), params
    )
    await conn.execute(
        text(
            "DELETE FROM discovery.cleansing_issues WHERE child_flow_id = :child"
            " AND problem LIKE :prefix"
        ),
        {**params, "prefix": identity.ISSUE_PREFIX + "%"},
    )
    await conn.execute(_upsert_assets(key), params)
    await conn.execute(_UPSERT_APPLICATIONS, params)
    await analyze(conn, "assets")
    await conn.execute(_APPLICATION_SOURCES, params)
    await analyze(conn, "asset_sources")
    linked, unkeyed = (
        await conn.execute(
            text(
                "SELECT (SELECT count(DISTINCT asset_id) FROM discovery.asset_sources"
                "        WHERE child_flow_id = :child),"
                "       (SELECT count(*) FROM discovery.cleansing_issues"
                "        WHERE child_flow_id = :child AND problem LIKE :unkeyed)"
            ),
            {**params, "unkeyed": identity.ISSUE_PREFIX + "no host name,%"},
        )
    ).one()
    return int(linked), int(unkeyed)


# -- dependencies ---------------------------------------------------------------------------

# Each row's assets with their types, once (one join of the flow's links with the assets),
# then a row's application paired with its host by row number: joined from each application
# to its links, the planner probed a million links one by one (24 s at 1,000,000 rows).
_RUNS_ON = text(
    """
    WITH linked AS MATERIALIZED (
      SELECT s.row_number, s.asset_id, a.asset_type
      FROM discovery.asset_sources s JOIN discovery.assets a ON a.id = s.asset_id
      WHERE s.child_flow_id = :child
    )
    INSERT INTO discovery.dependencies
      (client_account_id, engagement_id, child_flow_id, source_asset_id, target_asset_id, kind,
       evidence)
    SELECT DISTINCT ON (app.asset_id, host.asset_id) :account, :engagement, :child,
           app.asset_id, host.asset_id,
           CASE WHEN host.asset_type = 'database' THEN 'uses_database' ELSE 'runs_on' END,
           'column application_name of imports/' || :import_text || ' row ' || host.row_number
    FROM linked host
    JOIN linked app ON app.row_number = host.row_number AND app.asset_type = 'application'
    WHERE host.asset_type <> 'application'
    ORDER BY app.asset_id, host.asset_id, host.row_number
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
        (child_flow_id, row_number, attribute, value, kind, problem)
      SELECT DISTINCT :child, row_number, 'depends_on', name, 'unresolved_dependency',
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
    await more_work_mem(conn)
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
