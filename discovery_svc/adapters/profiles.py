"""SQL for DATA_VALIDATION: per-column counts in one set-based pass, and profile storage."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.adapters import inventory
from discovery_svc.domain.patterns import PATTERN_GUARDS, PATTERNS
from discovery_svc.domain.profile import (
    ColumnCounts,
    ColumnProfile,
    DataFlag,
    DataProfile,
    DuplicateKey,
    Severity,
)

# btrim of ASCII whitespace, as patterns.classify strips values.
_TRIMMED = "btrim(v, E' \\t\\n\\r\\f\\v')"

# Each pattern runs only where a cheap necessary condition holds: a regex is what costs
# (PostgreSQL spends microseconds per value on DATE, IPV6 or OS), and most values fail every
# pattern but one. The guards are implied by the patterns (tests/test_profile_guards.py).
_MATCH_COLUMNS = ",\n".join(
    f"coalesce(sum(n) FILTER (WHERE t <> '' AND ({PATTERN_GUARDS[p.kind].format(t='t', lower='l')}"
    f") AND t ~* :re_{p.kind.value}), 0) AS m_{p.kind.value}"
    for p in PATTERNS
)

# One pass over the rows: each column's distinct values with their counts (grouped in the "C"
# collation, which changes how fast the partial aggregates sort, not what is equal; the
# patterns and the samples' order see the database's collation as before), then
# every count from those. The patterns run once per distinct value instead of once per cell,
# and the top-5 samples are a bounded sort per column rather than a window over every value.
_PROFILE = text(
    f"""
    WITH vals AS MATERIALIZED (
      SELECT *, lower(t COLLATE "C") AS l
      FROM (SELECT ord, v COLLATE "default" AS v, n, {_TRIMMED} COLLATE "default" AS t
      FROM (SELECT u.ord, u.v COLLATE "C" AS v, count(*) AS n
            FROM discovery.raw_records r, unnest(r.values) WITH ORDINALITY AS u(v, ord)
            WHERE r.import_id = :id
            GROUP BY u.ord, u.v COLLATE "C") g) trimmed
    ), per_column AS (
      SELECT ord,
             coalesce(sum(n) FILTER (WHERE t = ''), 0) AS empty,
             coalesce(sum(n) FILTER (WHERE t <> '' AND t <> v), 0) AS padded,
             count(*) FILTER (WHERE t <> '') AS distinct_count,
             count(*) FILTER (WHERE t <> '' AND n > 1) AS duplicate_values,
             coalesce(sum(n) FILTER (WHERE t <> '' AND n > 1), 0) AS duplicate_rows,
             {_MATCH_COLUMNS}
      FROM vals GROUP BY ord
    )
    SELECT c.*, s.samples, s.duplicate_examples
    FROM per_column c
    CROSS JOIN LATERAL (
      SELECT array_agg(v ORDER BY k) AS samples,
             array_agg(v ORDER BY k) FILTER (WHERE n > 1) AS duplicate_examples
      FROM (SELECT v, n, row_number() OVER (ORDER BY n DESC, v) AS k
            FROM (SELECT v, n FROM vals WHERE vals.ord = c.ord AND t <> ''
                  ORDER BY n DESC, v LIMIT 5) top) ranked
    ) s
    ORDER BY c.ord
    """
)


SHOWN_VALUE = 200
"""Characters of a sample value kept in a profile: a cell can be a megabyte."""


def _shown(value: str) -> str:
    return value if len(value) <= SHOWN_VALUE else value[: SHOWN_VALUE - 1] + "\u2026"


async def count_columns(
    conn: AsyncConnection, import_id: uuid.UUID, columns: list[str]
) -> list[ColumnCounts]:
    """Per-column counts over every raw record of an import."""
    params: dict[str, Any] = {"id": import_id}
    params.update({f"re_{p.kind.value}": p.pg_regex for p in PATTERNS})
    # The distinct values of a column of a million rows are a hash table of a few hundred MB.
    await inventory.more_work_mem(conn)
    per_column = {r.ord: r for r in (await conn.execute(_PROFILE, params)).all()}
    counts = []
    for position, name in enumerate(columns, start=1):
        pc = per_column.get(position)
        pv = pc if pc is not None and pc.distinct_count else None
        counts.append(
            ColumnCounts(
                position=position,
                name=name,
                empty=int(pc.empty) if pc else 0,
                distinct=pv.distinct_count if pv else 0,
                padded=int(pc.padded) if pc else 0,
                matches={p.kind: int(getattr(pc, f"m_{p.kind.value}")) for p in PATTERNS}
                if pc
                else {},
                samples=[_shown(v) for v in pv.samples or []] if pv else [],
                duplicate_values=pv.duplicate_values if pv else 0,
                duplicate_rows=int(pv.duplicate_rows) if pv else 0,
                duplicate_examples=[_shown(v) for v in pv.duplicate_examples or []] if pv else [],
            )
        )
    return counts


async def replace(conn: AsyncConnection, child_flow_id: uuid.UUID, profile: DataProfile) -> None:
    """Store a child's profile, replacing the one of an earlier run."""
    await conn.execute(
        text(
            """
            INSERT INTO discovery.data_profiles
              (child_flow_id, import_id, row_count, columns, duplicate_keys, flags)
            VALUES (:child, :import_id, :row_count, CAST(:columns AS jsonb),
                    CAST(:duplicate_keys AS jsonb), CAST(:flags AS jsonb))
            ON CONFLICT (child_flow_id) DO UPDATE SET
              import_id = EXCLUDED.import_id, row_count = EXCLUDED.row_count,
              columns = EXCLUDED.columns, duplicate_keys = EXCLUDED.duplicate_keys,
              flags = EXCLUDED.flags, create_time = now()
            """
        ),
        {
            "child": child_flow_id,
            "import_id": uuid.UUID(profile.import_id),
            "row_count": profile.row_count,
            "columns": json.dumps([asdict(c) for c in profile.columns]),
            "duplicate_keys": json.dumps([asdict(d) for d in profile.duplicate_keys]),
            "flags": json.dumps([asdict(f) for f in profile.flags]),
        },
    )


async def get(conn: AsyncConnection, child_flow_id: uuid.UUID) -> DataProfile | None:
    row = (
        await conn.execute(
            text(
                """
                SELECT p.import_id, c.master_flow_id, p.row_count, p.columns, p.duplicate_keys,
                       p.flags, p.create_time
                FROM discovery.data_profiles p
                JOIN discovery.child_flows c ON c.id = p.child_flow_id
                WHERE p.child_flow_id = :child
                """
            ),
            {"child": child_flow_id},
        )
    ).first()
    if row is None:
        return None

    def loads(value: Any) -> list[dict[str, Any]]:
        return list(json.loads(value) if isinstance(value, str) else value)

    return DataProfile(
        import_id=str(row[0]),
        master_flow_id=str(row[1]),
        row_count=row[2],
        columns=[
            ColumnProfile(**{**c, "patterns": [tuple(p) for p in c["patterns"]]})
            for c in loads(row[3])
        ],
        duplicate_keys=[DuplicateKey(**d) for d in loads(row[4])],
        flags=[DataFlag(**{**f, "severity": Severity(f["severity"])}) for f in loads(row[5])],
        create_time=row[6],
    )
