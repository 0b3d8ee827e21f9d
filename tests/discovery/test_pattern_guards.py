"""The profile's cheap guards never hide a match: every value a pattern matches in PostgreSQL
also passes that kind's guard, so the guarded counts are the unguarded ones."""

from __future__ import annotations

import csv
import random

import asyncpg

from discovery_svc.domain.patterns import PATTERN_GUARDS, PATTERNS
from flowpair_shared.db import asyncpg_dsn
from tests.discovery.test_patterns import ALL_VALUES
from tests.support import ROOT


def _values() -> list[str]:
    values = set(ALL_VALUES)
    for path in sorted((ROOT / "tests" / "corpus").glob("*.csv")):
        with path.open(newline="", encoding="utf-8-sig") as f:
            values.update(cell for row in csv.reader(f) for cell in row)
    rng = random.Random(15)
    # Values every kind matches, padded and in mixed case, around the examples of each kind.
    for value in list(values):
        values.add(f"  {value.upper()}\t")
        values.add(value.swapcase())
    for _ in range(20000):
        values.add("".join(rng.choice("0123456789.:-/ @{}abefgkmnpstxyWINOS") for _ in range(8)))
    return sorted(values)


async def test_every_match_passes_its_guard(admin_url: str) -> None:
    values = _values()
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        hidden: dict[str, list[str]] = {}
        for p in PATTERNS:
            guard = PATTERN_GUARDS[p.kind].format(t="t", lower="l")
            rows = await conn.fetch(
                f"""
                SELECT t FROM (SELECT t, lower(t COLLATE "C") AS l
                               FROM (SELECT btrim(v, E' \\t\\n\\r\\f\\v') AS t
                                     FROM unnest($2::text[]) v) x) y
                WHERE t <> '' AND t ~* $1 AND NOT ({guard})
                """,
                p.pg_regex,
                values,
            )
            matched = await conn.fetchval(
                "SELECT count(*) FROM unnest($2::text[]) v"
                " WHERE btrim(v, E' \\t\\n\\r\\f\\v') ~* $1",
                p.pg_regex,
                values,
            )
            assert matched > 0, p.kind  # the values exercise the kind
            if rows:
                hidden[p.kind.value] = [r["t"] for r in rows]
    finally:
        await conn.close()
    assert hidden == {}
