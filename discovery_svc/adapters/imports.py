"""SQL for imports: bulk inserts of raw records and quarantined rows, and reads."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.domain.csv_stream import Quarantined, RowBlock
from discovery_svc.domain.imports import QUARANTINE_SHOWN, ImportSummary
from flowpair_shared.db_scope import ACCOUNT_SETTING, ENGAGEMENT_SETTING
from flowpair_shared.tenancy import Tenant

_TENANT = (
    f"(SELECT nullif(current_setting('{ACCOUNT_SETTING}', true), '')::uuid),"
    f" (SELECT nullif(current_setting('{ENGAGEMENT_SETTING}', true), '')::uuid)"
)

# One statement per block, its rows as one text parameter that PostgreSQL splits itself:
# encoding a text[] per row in the driver cost more than parsing the file. COPY is not an
# option as the app role: PostgreSQL refuses COPY FROM into a table with row-level security,
# and a staging table only moves the same per-row encoding to another table. The tenant
# columns are scalar subqueries, evaluated once per statement.
_INSERT_ROWS = f"""
INSERT INTO discovery.raw_records
  (client_account_id, engagement_id, import_id, row_number, line_number, values)
SELECT {_TENANT}, $1::uuid, $2::bigint + r.n,
       coalesce(r.line, $3::bigint + r.n - 1), string_to_array(r.row, $4::text)
FROM unnest(string_to_array($5::text, $6::text), string_to_array($7::text, ',')::bigint[])
     WITH ORDINALITY AS r(row, line, n)
"""

_INSERT_QUARANTINED = f"""
INSERT INTO discovery.quarantined_rows
  (client_account_id, engagement_id, import_id, line_number, reason, excerpt)
SELECT {_TENANT}, $1::uuid, q.line, q.reason, q.excerpt
FROM unnest($2::bigint[], $3::text[], $4::text[]) AS q(line, reason, excerpt)
"""


class RowWriter:
    """Inserts the blocks of one import through the caller's transaction, one statement per
    block, with at most one block in flight: the next one is parsed while the database stores
    the last, and memory stays bounded by two blocks whatever the file's size.

    ``close()`` must follow, also when the upload fails: it waits for the block in flight, so
    nothing runs on the connection once the caller rolls back or returns it to the pool."""

    def __init__(self, conn: AsyncConnection, storage_id: uuid.UUID) -> None:
        self._conn = conn
        self._import_id = storage_id
        self._in_flight: asyncio.Future[None] | None = None
        self.row_count = 0
        self.quarantined_count = 0

    async def add(self, block: RowBlock) -> None:
        await self._wait()
        raw = (await self._conn.get_raw_connection()).driver_connection
        assert raw is not None
        if not raw.is_in_transaction():
            # SQLAlchemy begins the driver's transaction lazily, at its first statement;
            # without it each statement would commit on its own.
            raise RuntimeError("RowWriter: the caller's transaction has not begun a statement")
        self._in_flight = asyncio.ensure_future(self._write(raw, block, self.row_count))
        # A cancelled upload may leave before the block is done (the rollback then cancels its
        # statement); its error is no news then, and is still raised to a caller that waits.
        self._in_flight.add_done_callback(_retrieve)
        self.row_count += block.count
        self.quarantined_count += len(block.quarantined)

    async def close(self) -> None:
        """Wait for the block in flight; its error, if any, is raised here."""
        await self._wait()

    async def _wait(self) -> None:
        in_flight = self._in_flight
        if in_flight is not None:
            # Shielded and forgotten only once done: a caller cancelled meanwhile still finds
            # it in close() and waits for it there.
            try:
                await asyncio.shield(in_flight)
            finally:
                if in_flight.done():
                    self._in_flight = None

    async def _write(self, raw: Any, block: RowBlock, rows_before: int) -> None:
        if block.count:
            lines = block.line_numbers
            await raw.execute(
                _INSERT_ROWS,
                self._import_id,
                rows_before,
                block.first_line,
                block.value_sep,
                block.text,
                block.row_sep,
                None if lines is None else ",".join(map(str, lines)),
            )
        if block.quarantined:
            q = block.quarantined
            await raw.execute(
                _INSERT_QUARANTINED,
                self._import_id,
                [item.line_number for item in q],
                [item.reason for item in q],
                [item.excerpt for item in q],
            )


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


async def exists(conn: AsyncConnection, tenant: Tenant, import_id: uuid.UUID) -> bool:
    """Whether the tenant has an import with this id (other tenants' ids do not matter)."""
    row = await conn.execute(
        text(
            "SELECT 1 FROM discovery.imports WHERE public_id = :id"
            " AND client_account_id = :account AND engagement_id = :engagement"
        ),
        {"id": import_id, "account": tenant.client_account_id, "engagement": tenant.engagement_id},
    )
    return row.first() is not None


async def insert(
    conn: AsyncConnection, tenant: Tenant, summary: ImportSummary
) -> ImportSummary | None:
    """Insert the import; None if the tenant has one with this id already (a concurrent
    upload that committed first)."""
    create_time = (
        await conn.execute(
            text(
                """
                INSERT INTO discovery.imports
                  (id, public_id, client_account_id, engagement_id, create_user, file_name,
                   columns, delimiter, had_bom, row_count, quarantined_count, byte_count)
                VALUES (:storage_id, :id, :account, :engagement, :user, :file_name, :columns,
                        :delimiter, :had_bom, :row_count, :quarantined_count, :byte_count)
                ON CONFLICT (client_account_id, engagement_id, public_id) DO NOTHING
                RETURNING create_time
                """
            ),
            {
                "storage_id": summary.storage_id,
                "id": summary.id,
                "account": tenant.client_account_id,
                "engagement": tenant.engagement_id,
                "user": tenant.user_id,
                "file_name": summary.file_name,
                "columns": summary.columns,
                "delimiter": summary.delimiter,
                "had_bom": summary.had_bom,
                "row_count": summary.row_count,
                "quarantined_count": summary.quarantined_count,
                "byte_count": summary.byte_count,
            },
        )
    ).scalar_one_or_none()
    if create_time is None:
        return None
    return ImportSummary(**{**summary.__dict__, "create_time": create_time})


async def get(
    conn: AsyncConnection, tenant: Tenant, import_id: uuid.UUID, *, with_quarantine: bool = False
) -> ImportSummary | None:
    row = (
        await conn.execute(
            text(
                """
                SELECT public_id, id, file_name, columns, delimiter, had_bom, row_count,
                       quarantined_count, byte_count, create_time
                FROM discovery.imports
                WHERE public_id = :id AND client_account_id = :account
                  AND engagement_id = :engagement
                """
            ),
            {
                "id": import_id,
                "account": tenant.client_account_id,
                "engagement": tenant.engagement_id,
            },
        )
    ).first()
    if row is None:
        return None
    quarantined: Sequence[Quarantined] = []
    if with_quarantine:
        rows = await conn.execute(
            text(
                """
                SELECT line_number, reason, excerpt FROM discovery.quarantined_rows
                WHERE import_id = :id ORDER BY line_number LIMIT :limit
                """
            ),
            {"id": row[1], "limit": QUARANTINE_SHOWN},
        )
        quarantined = [Quarantined(r[0], r[1], r[2]) for r in rows]
    return ImportSummary(
        id=row[0],
        storage_id=row[1],
        file_name=row[2],
        columns=list(row[3]),
        delimiter=row[4],
        had_bom=row[5],
        row_count=row[6],
        quarantined_count=row[7],
        byte_count=row[8],
        create_time=row[9],
        quarantined=list(quarantined),
    )
