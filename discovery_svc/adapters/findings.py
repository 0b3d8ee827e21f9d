"""SQL for a flow's recorded issues and the counts that summarise its data phases.

The child flow is found through the tenant first; everything here is keyed by its id.
"""

from __future__ import annotations

import uuid
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
            "SELECT id, row_number, kind, attribute, value, problem"
            f" FROM discovery.cleansing_issues WHERE {where} AND id > :after"
            " ORDER BY id LIMIT :limit"
        ),
        {**params, "after": after, "limit": limit},
    )
    found = [DataIssue(r[0], r[1], IssueKind(r[2]), r[3], r[4], r[5]) for r in rows]
    total = (
        await conn.execute(
            text(f"SELECT count(*) FROM discovery.cleansing_issues WHERE {where}"), params
        )
    ).scalar_one()
    return found, int(total)


_COUNTS = text(
    """
    SELECT
      (SELECT count(*) FROM discovery.cleansed_records WHERE child_flow_id = :child),
      (SELECT count(DISTINCT row_number) FROM discovery.asset_sources
        WHERE child_flow_id = :child),
      (SELECT count(*) FROM discovery.dependencies WHERE child_flow_id = :child)
    """
)

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
      SELECT DISTINCT s.asset_id FROM discovery.asset_sources s
      JOIN discovery.child_flows c ON c.id = s.child_flow_id
      WHERE s.asset_id IN (SELECT asset_id FROM mine) AND s.child_flow_id <> :child
        AND c.create_time < (SELECT create_time FROM discovery.child_flows WHERE id = :child)
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
    WHERE child_flow_id = :child GROUP BY kind ORDER BY kind
    """
)


async def summaries(
    conn: AsyncConnection, child_flow_id: uuid.UUID, *, rows_in: int, phases: set[Phase]
) -> list[PhaseSummary]:
    """The summaries of ``phases`` (the completed data phases), in execution order."""
    if not phases:
        return []
    params = {"child": child_flow_id}
    cleansed, with_assets, dependencies = (await conn.execute(_COUNTS, params)).one()
    by_phase: dict[Phase, list[IssueCount]] = {}
    for kind, count, rows in await conn.execute(_ISSUES, params):
        k = IssueKind(kind)
        by_phase.setdefault(RULES[k].phase, []).append(IssueCount(k, int(count), int(rows)))
    out: list[PhaseSummary] = []
    if Phase.DATA_CLEANSING in phases:
        out.append(
            PhaseSummary(
                Phase.DATA_CLEANSING,
                rows_in,
                int(cleansed),
                tuple(by_phase.get(Phase.DATA_CLEANSING, ())),
            )
        )
    if Phase.ASSET_INVENTORY in phases:
        created, updated, merged = (await conn.execute(_ASSETS, params)).one()
        out.append(
            PhaseSummary(
                Phase.ASSET_INVENTORY,
                int(cleansed),
                int(with_assets),
                tuple(by_phase.get(Phase.ASSET_INVENTORY, ())),
                assets_created=int(created),
                assets_updated=int(updated),
                assets_merged=int(merged),
            )
        )
    if Phase.DEPENDENCY_ANALYSIS in phases:
        out.append(
            PhaseSummary(
                Phase.DEPENDENCY_ANALYSIS,
                int(cleansed),
                0,
                tuple(by_phase.get(Phase.DEPENDENCY_ANALYSIS, ())),
                dependencies=int(dependencies),
            )
        )
    return out
