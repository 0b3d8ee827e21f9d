"""SQL for a flow's recorded issues and the counts that summarise its data phases.

The child flow is found through the tenant first; everything here is keyed by its id. A
phase's summary is counted once, at the end of the phase and in its transaction, and stored
with the phase's status (``child_phases.summary``): reading a flow never counts a million rows.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from dataclasses import asdict, replace
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.domain.findings import (
    RULES,
    DataIssue,
    IssueCount,
    IssueFilter,
    IssueKind,
    PhaseSummary,
)
from flowpair_shared.domain import Phase

MAX_VALUE = 200
"""Characters of an issue's value the API returns (the row holds the rest)."""


def _where(child_flow_id: uuid.UUID, f: IssueFilter) -> tuple[str, dict[str, Any]]:
    where = ["child_flow_id = :child", "kind = ANY(:kinds)"]
    params: dict[str, Any] = {"child": child_flow_id, "kinds": [k.value for k in f.kinds]}
    if f.attributes is not None:
        whole_row = [k.value for k, rule in RULES.items() if rule.whole_row]
        where.append("attribute = ANY(:attributes) AND NOT kind = ANY(:whole_row)")
        params["attributes"] = list(f.attributes)
        params["whole_row"] = whole_row
    if f.row_number is not None:
        where.append("row_number = :row")
        params["row"] = f.row_number
    return " AND ".join(where), params


async def list_page(
    conn: AsyncConnection, child_flow_id: uuid.UUID, f: IssueFilter, *, after: int, limit: int
) -> tuple[list[DataIssue], int]:
    """Issues after id ``after`` in recording order (at most ``limit``), and how many match."""
    where, params = _where(child_flow_id, f)
    rows = await conn.execute(
        text(
            "SELECT id, row_number, kind, attribute, left(value, :cut), problem"
            f" FROM discovery.cleansing_issues WHERE {where} AND id > :after"
            " ORDER BY id LIMIT :limit"
        ),
        {**params, "after": after, "limit": limit, "cut": MAX_VALUE},
    )
    found = [DataIssue(r[0], r[1], IssueKind(r[2]), r[3], r[4], r[5]) for r in rows]
    total = (
        await conn.execute(
            text(f"SELECT count(*) FROM discovery.cleansing_issues WHERE {where}"), params
        )
    ).scalar_one()
    return found, int(total)


_ROWS = {
    "cleansed": "SELECT count(*) FROM discovery.cleansed_records WHERE child_flow_id = :child",
    "with_assets": "SELECT count(DISTINCT row_number) FROM discovery.asset_sources"
    " WHERE child_flow_id = :child",
    "dependencies": "SELECT count(*) FROM discovery.dependencies WHERE child_flow_id = :child",
}

# An asset is "updated" when a flow created before this one also links rows to it; "merged"
# when several rows of this flow built it (applications gather their servers' rows: not
# merges). Asset ids are engagement-scoped, and row-level security backs the join.
_ASSETS = text(
    """
    WITH mine AS (
      SELECT s.asset_id, count(*) AS rows, bool_or(a.asset_type = 'application') AS app
      FROM discovery.asset_sources s JOIN discovery.assets a ON a.id = s.asset_id
      WHERE s.child_flow_id = :child GROUP BY s.asset_id
    ), earlier AS (
      -- The earlier flows first (none, in a new engagement): from each asset of a large flow
      -- the planner looked for earlier links one index probe at a time (10 s at 1,000,000).
      SELECT DISTINCT s.asset_id FROM discovery.asset_sources s
      WHERE s.child_flow_id IN (
          SELECT c.id FROM discovery.child_flows c WHERE c.id <> :child
            AND c.create_time < (SELECT create_time FROM discovery.child_flows WHERE id = :child))
        AND s.asset_id IN (SELECT asset_id FROM mine)
    )
    SELECT count(*) FILTER (WHERE asset_id NOT IN (SELECT asset_id FROM earlier)),
           count(*) FILTER (WHERE asset_id IN (SELECT asset_id FROM earlier)),
           count(*) FILTER (WHERE rows > 1 AND NOT app)
    FROM mine
    """
)

_ISSUES = text(
    """
    SELECT kind, count(*), count(DISTINCT row_number) FROM discovery.cleansing_issues
    WHERE child_flow_id = :child AND kind = ANY(:kinds) GROUP BY kind ORDER BY kind
    """
)


async def _count(conn: AsyncConnection, what: str, params: dict[str, Any]) -> int:
    return int((await conn.execute(text(_ROWS[what]), params)).scalar_one())


async def record(
    conn: AsyncConnection, child_flow_id: uuid.UUID, phase: Phase, *, rows_in: int | None = None
) -> PhaseSummary:
    """Count what ``phase`` did (rows in defaults to the cleansed rows) and store it with it."""
    params: dict[str, Any] = {"child": child_flow_id}
    kinds = [k.value for k, rule in RULES.items() if rule.phase == phase]
    issues = tuple(
        IssueCount(IssueKind(kind), int(count), int(rows))
        for kind, count, rows in await conn.execute(_ISSUES, {**params, "kinds": kinds})
    )
    cleansed = await _count(conn, "cleansed", params)
    summary = PhaseSummary(phase, cleansed if rows_in is None else rows_in, 0, issues)
    if phase == Phase.DATA_CLEANSING:
        summary = replace(summary, rows_out=cleansed)
    elif phase == Phase.ASSET_INVENTORY:
        created, updated, merged = (await conn.execute(_ASSETS, params)).one()
        summary = replace(
            summary,
            rows_out=await _count(conn, "with_assets", params),
            assets_created=int(created),
            assets_updated=int(updated),
            assets_merged=int(merged),
        )
    elif phase == Phase.DEPENDENCY_ANALYSIS:
        summary = replace(summary, dependencies=await _count(conn, "dependencies", params))
    await conn.execute(
        text(
            "UPDATE discovery.child_phases SET summary = CAST(:summary AS jsonb)"
            " WHERE child_flow_id = :child AND phase = :phase"
        ),
        {**params, "phase": int(phase), "summary": json.dumps(_to_json(summary))},
    )
    return summary


async def stored(
    conn: AsyncConnection, child_flow_id: uuid.UUID, phases: Collection[Phase]
) -> list[PhaseSummary]:
    """The stored summaries of ``phases``, in execution order."""
    rows = await conn.execute(
        text(
            "SELECT summary FROM discovery.child_phases WHERE child_flow_id = :child"
            " AND phase = ANY(:phases) AND summary IS NOT NULL ORDER BY phase"
        ),
        {"child": child_flow_id, "phases": [int(p) for p in phases]},
    )
    return [_from_json(r[0]) for r in rows]


def _to_json(s: PhaseSummary) -> dict[str, Any]:
    out = asdict(s)
    out["phase"] = s.phase.name
    out["issue_counts"] = [
        {"kind": c.kind.value, "count": c.count, "row_count": c.row_count} for c in s.issue_counts
    ]
    return out


def _from_json(d: dict[str, Any]) -> PhaseSummary:
    counts = tuple(
        IssueCount(IssueKind(c["kind"]), c["count"], c["row_count"]) for c in d["issue_counts"]
    )
    return PhaseSummary(
        **{**d, "phase": Phase[d["phase"]], "issue_counts": counts},
    )
