"""SQL of DATA_CLEANSING's pages: raw rows by row number after a cursor, and the cleansed
output past it.

A page is a keyset read on the raw rows' primary key ``(import_id, row_number)``, so a run
resumed at a cursor reads from there without a scan of what went before, and no server-side
cursor outlives a commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

PAGE_ROWS = 5_000


async def raw_page(
    conn: AsyncConnection, import_id: uuid.UUID, *, after_row: int, limit: int = PAGE_ROWS
) -> Sequence[Any]:
    """Up to ``limit`` raw rows ``(row_number, values)`` numbered above ``after_row``."""
    result = await conn.execute(
        text(
            "SELECT row_number, values FROM discovery.raw_records"
            " WHERE import_id = :id AND row_number > :after ORDER BY row_number LIMIT :limit"
        ),
        {"id": import_id, "after": after_row, "limit": limit},
    )
    return result.all()


async def discard_after(conn: AsyncConnection, child_flow_id: uuid.UUID, after_row: int) -> None:
    """Drop cleansed output past a resumed cursor. A page commits with its cursor, so there is
    none unless something wrote outside a checkpoint; a resumed run must never meet a row it
    is about to write (each raw row has exactly one cleansed row)."""
    for table in ("cleansed_records", "cleansing_issues"):
        await conn.execute(
            text(
                f"DELETE FROM discovery.{table}"
                " WHERE child_flow_id = :child AND row_number > :after"
            ),
            {"child": child_flow_id, "after": after_row},
        )
