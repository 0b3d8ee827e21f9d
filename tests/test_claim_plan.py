"""The relay's claim reads the claimable messages, not the history kept for retention.

Delivered outbox rows stay for the retention period (7 days by default). Found by profiling
relay lag: with no index giving one source's claimable rows in id order, the claim's plan
walked the primary key and filtered out every delivered row on the way, so each claim grew
with the history kept (migration 0016). The statistics here are the ones that led the
planner there: taken while the rows were still pending, as after a burst that autovacuum has
not analysed since. The work is counted in rows the claim's scans read, not timed.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import asyncpg

from flowpair_shared.db import APP_ROLE, asyncpg_dsn
from flowpair_shared.outbox.relay import _CLAIM

DELIVERED = 5000


def _rows_read(plan: dict[str, Any]) -> int:
    """Rows every scan of the plan produced or filtered out, over all its loops."""
    read = 0
    if plan.get("Node Type", "").endswith("Scan") and plan["Node Type"] != "CTE Scan":
        per_loop = plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)
        read += round(per_loop * plan.get("Actual Loops", 1))
    return read + sum(_rows_read(child) for child in plan.get("Plans", []))


def _cte(plan: dict[str, Any], name: str) -> dict[str, Any]:
    """The plan of the statement's CTE ``name``."""
    if plan.get("Subplan Name") == f"CTE {name}":
        return plan
    for child in plan.get("Plans", []):
        found = _cte(child, name)
        if found:
            return found
    return {}


async def _claim_reads(conn: asyncpg.Connection) -> tuple[int, dict[str, Any]]:
    """Rows the claim's scans read, and its plan, run as the relay runs it: the services'
    role, bound by row-level security, in the scope background work claims in (its updates
    rolled back)."""
    names = iter(range(1, 10))
    sql = re.sub(r"(?<!:):(\w+)", lambda _: f"${next(names)}", str(_CLAIM.text))
    undone = conn.transaction()
    await undone.start()
    try:
        await conn.execute(f"SET LOCAL ROLE {APP_ROLE}")
        await conn.execute("SELECT set_config('flowpair.scope', 'system', true)")
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE claim AS {sql}")
        out = await conn.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON)"
            f" EXECUTE claim('orchestrator', 100, '{uuid.uuid4()}', 5)"
        )
    finally:
        await undone.rollback()
    # The claim proper; the update that follows joins the claimed ids (a hash join over a
    # table this small, one index probe per id over a large one).
    claim = _cte(json.loads(out)[0]["Plan"], "claimable")
    assert claim, out
    return _rows_read(claim), claim


async def _add(conn: asyncpg.Connection, n: int, *, parked_after: int | None = None) -> None:
    """``n`` pending messages of one tenant from the orchestrator, each the first of its own
    key; those after the first ``parked_after`` parked."""
    await conn.execute(
        """
        INSERT INTO messaging.outbox (message_id, source, destination, method, message_type,
          ordering_key, seq, payload, client_account_id, engagement_id, parked_at)
        SELECT gen_random_uuid(), 'orchestrator', 'discovery', '/m', 't', gen_random_uuid(),
               1, '\\x00', $3, $4, CASE WHEN g > $2 THEN now() END
        FROM generate_series(1, $1) g
        """,
        n,
        n if parked_after is None else parked_after,
        uuid.uuid4(),
        uuid.uuid4(),
    )


async def test_a_claim_reads_the_claimable_rows_not_the_delivered_history(
    database_url: str,
) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await _add(conn, DELIVERED + 3)
        # Statistics taken while every row is pending, and kept so: no autovacuum here.
        await conn.execute("ALTER TABLE messaging.outbox SET (autovacuum_enabled = false)")
        await conn.execute("ANALYZE messaging.outbox")
        await conn.execute(
            "UPDATE messaging.outbox SET delivered_at = now()"
            " WHERE id <= (SELECT min(id) + $1 - 1 FROM messaging.outbox)",
            DELIVERED,
        )
        # The steady state: the updates' dead versions gone (VACUUM leaves the column
        # statistics as they were).
        await conn.execute("VACUUM messaging.outbox")
        read, plan = await _claim_reads(conn)
        assert read < 100, f"the claim read {read} rows to find 3 claimable ones: {plan}"
    finally:
        await conn.close()


async def test_a_claim_looks_up_each_candidates_key_not_every_undelivered_message(
    database_url: str,
) -> None:
    # Whether a candidate is the first undelivered message of its key was asked with NOT
    # EXISTS; without statistics that say otherwise (a young table, as during a first burst)
    # the planner made it an anti-join whose inner side read every undelivered message of the
    # source once per candidate: under load, the claim took 44% of the database's time per
    # flow. Parked messages (a peer's outage) are undelivered and not claimable.
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute("ALTER TABLE messaging.outbox SET (autovacuum_enabled = false)")
        await _add(conn, 2003, parked_after=3)
        read, plan = await _claim_reads(conn)
        assert read < 100, f"the claim read {read} rows to find 3 claimable ones: {plan}"
    finally:
        await conn.close()
