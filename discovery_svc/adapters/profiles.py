"""SQL for DATA_VALIDATION: per-column counts in two set-based passes, and profile storage."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.domain.patterns import PATTERNS
from discovery_svc.domain.profile import (
    ColumnCounts,
    ColumnProfile,
    DataFlag,
    DataProfile,
    DuplicateKey,
    Severity,
)

# btrim of ASCII whitespace, as patterns.classify strips values.
_TRIMMED = "btrim(u.v, E' \\t\\n\\r\\f\\v')"

_MATCH_COLUMNS = ",\n".join(
    f"count(*) FILTER (WHERE {_TRIMMED} ~* :re_{p.kind.value}) AS m_{p.kind.value}"
    for p in PATTERNS
)

_PER_COLUMN = text(
    f"""
    SELECT u.ord,
           count(*) FILTER (WHERE {_TRIMMED} = '') AS empty,
           count(*) FILTER (WHERE {_TRIMMED} <> '' AND {_TRIMMED} <> u.v) AS padded,
           {_MATCH_COLUMNS}
    FROM discovery.raw_records r, unnest(r.values) WITH ORDINALITY AS u(v, ord)
    WHERE r.import_id = :id
    GROUP BY u.ord ORDER BY u.ord
    """
)

_PER_VALUE = text(
    f"""
    WITH vals AS (
      SELECT u.ord, u.v, count(*) AS n
      FROM discovery.raw_records r, unnest(r.values) WITH ORDINALITY AS u(v, ord)
      WHERE r.import_id = :id AND {_TRIMMED} <> ''
      GROUP BY u.ord, u.v
    ), ranked AS (
      SELECT ord, v, n, row_number() OVER (PARTITION BY ord ORDER BY n DESC, v) AS rank
      FROM vals
    )
    SELECT ord,
           count(*) AS distinct_count,
           (array_agg(v ORDER BY rank) FILTER (WHERE rank <= 5)) AS samples,
           count(*) FILTER (WHERE n > 1) AS duplicate_values,
           coalesce(sum(n) FILTER (WHERE n > 1), 0) AS duplicate_rows,
           (array_agg(v ORDER BY rank) FILTER (WHERE n > 1 AND rank <= 5)) AS duplicate_examples
    FROM ranked GROUP BY ord
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
    per_column = {r.ord: r for r in (await conn.execute(_PER_COLUMN, params)).all()}
    per_value = {r.ord: r for r in (await conn.execute(_PER_VALUE, {"id": import_id})).all()}
    counts = []
    for position, name in enumerate(columns, start=1):
        pc, pv = per_column.get(position), per_value.get(position)
        counts.append(
            ColumnCounts(
                position=position,
                name=name,
                empty=pc.empty if pc else 0,
                distinct=pv.distinct_count if pv else 0,
                padded=pc.padded if pc else 0,
                matches={p.kind: getattr(pc, f"m_{p.kind.value}") for p in PATTERNS} if pc else {},
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
