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

    def __init__(self, conn: AsyncConnection, import_id: uuid.UUID, batch: int = 5000) -> None:
        self._conn = conn
        self._import_id = import_id
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


async def exists(conn: AsyncConnection, import_id: uuid.UUID) -> bool:
    """Whether any tenant has an import with this id (ids are global; the function sees past
    row-level security and answers only this)."""
    taken = await conn.scalar(text("SELECT discovery.import_id_taken(:id)"), {"id": import_id})
    return bool(taken)


async def insert(conn: AsyncConnection, tenant: Tenant, summary: ImportSummary) -> ImportSummary:
    create_time = (
        await conn.execute(
            text(
                """
                INSERT INTO discovery.imports
                  (id, client_account_id, engagement_id, create_user, file_name, columns,
                   delimiter, had_bom, row_count, quarantined_count, byte_count)
                VALUES (:id, :account, :engagement, :user, :file_name, :columns, :delimiter,
                        :had_bom, :row_count, :quarantined_count, :byte_count)
                RETURNING create_time
                """
            ),
            {
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
    ).scalar_one()
    return ImportSummary(**{**summary.__dict__, "create_time": create_time})


async def get(
    conn: AsyncConnection, tenant: Tenant, import_id: uuid.UUID, *, with_quarantine: bool = False
) -> ImportSummary | None:
    row = (
        await conn.execute(
            text(
                """
                SELECT id, file_name, columns, delimiter, had_bom, row_count, quarantined_count,
                       byte_count, create_time
                FROM discovery.imports
                WHERE id = :id AND client_account_id = :account AND engagement_id = :engagement
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
            {"id": import_id, "limit": QUARANTINE_SHOWN},
        )
        quarantined = [Quarantined(r[0], r[1], r[2]) for r in rows]
    return ImportSummary(
        id=row[0],
        file_name=row[1],
        columns=list(row[2]),
        delimiter=row[3],
        had_bom=row[4],
        row_count=row[5],
        quarantined_count=row[6],
        byte_count=row[7],
        create_time=row[8],
        quarantined=list(quarantined),
    )
