"""Row counts and checksums of every table the services own, to show what a batch changed."""

from __future__ import annotations

import asyncio
import time

import asyncpg

SCHEMAS = ("orchestrator", "discovery", "messaging")
Snapshot = dict[str, tuple[int, str]]


class Rows:
    """One connection for snapshots; the tables are listed once, from the catalog."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._query = ""
        self.tables: list[str] = []

    async def load(self) -> None:
        found = await self._conn.fetch(
            "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables"
            " WHERE table_schema = ANY($1::text[]) AND table_type = 'BASE TABLE' ORDER BY 1",
            list(SCHEMAS),
        )
        self.tables = [r["t"] for r in found]
        self._query = " UNION ALL ".join(
            f"SELECT '{t}' AS t, count(*) AS n,"
            f" md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) AS sum"
            f" FROM {t} x"
            for t in self.tables
        )

    async def snapshot(self) -> Snapshot:
        return {r["t"]: (r["n"], r["sum"]) for r in await self._conn.fetch(self._query)}

    async def busy(self) -> int:
        """Work the services still have in hand: undelivered messages, unfinished phases."""
        value = await self._conn.fetchval(
            "SELECT (SELECT count(*) FROM messaging.outbox"
            "        WHERE delivered_at IS NULL AND parked_at IS NULL)"
            "     + (SELECT count(*) FROM discovery.phase_jobs"
            "        WHERE state IN ('queued', 'running'))"
        )
        return int(value)

    async def quiet(self, timeout: float = 30.0, settle: float = 0.1) -> Snapshot | None:
        """Wait until nothing is in flight and two snapshots ``settle`` apart agree; that
        snapshot, or None if the services were still busy after ``timeout``."""
        deadline = time.monotonic() + timeout
        previous = await self.snapshot()
        while time.monotonic() < deadline:
            await asyncio.sleep(settle)
            current = await self.snapshot()
            if current == previous and await self.busy() == 0:
                return current
            previous = current
        return None


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    out = []
    for table in sorted(set(before) | set(after)):
        b, a = before.get(table, (0, "")), after.get(table, (0, ""))
        if b != a:
            out.append(
                f"{table}: {b[0]} → {a[0]} rows" + (" (content changed)" if b[0] == a[0] else "")
            )
    return out
