"""SQL for imports: bulk COPY of raw records and quarantined rows, and reads."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.domain.csv_stream import Quarantined, Row
from discovery_svc.domain.imports import QUARANTINE_SHOWN, ImportSummary
from flowpair_shared import db_scope
from flowpair_shared.tenancy import Tenant


class CopyWriter:
    """COPYs rows and quarantined rows of one import in batches through the caller's
    transaction, so memory stays bounded by one batch whatever the file's size."""

    def __init__(self, conn: AsyncConnection, storage_id: uuid.UUID, batch: int = 5000) -> None:
        self._conn = conn
        self._import_id = storage_id
        self._batch = batch
        self._rows: list[tuple[uuid.UUID, int, int, list[str]]] = []
        self._quarantined: list[tuple[uuid.UUID, int, str, str]] = []
        self.row_count = 0
        self.quarantined_count = 0

    async def add(self, item: Row | Quarantined) -> None:
        if isinstance(item, Row):
            self.row_count += 1
            self._rows.append((self._import_id, self.row_count, item.line_number, item.values))
        else:
            self.quarantined_count += 1
            self._quarantined.append((self._import_id, item.line_number, item.reason, item.excerpt))
        if len(self._rows) + len(self._quarantined) >= self._batch:
            await self.flush()

    async def flush(self) -> None:
        # Through the caller's transaction, which has already begun with a statement of its
        # own (and so with its tenant set).
        await db_scope.copy_records(
            self._conn,
            "discovery.raw_records",
            ["import_id", "row_number", "line_number", "values"],
            self._rows,
        )
        self._rows = []
        await db_scope.copy_records(
            self._conn,
            "discovery.quarantined_rows",
            ["import_id", "line_number", "reason", "excerpt"],
            self._quarantined,
        )
        self._quarantined = []


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
