"""DATA_CLEANSING: applies the approved mapping to every raw row and normalises values.

Rows are read in pages by row number and written back with COPY; the normalisers are
memoised, since inventory columns repeat the same values many times. A value that cannot be
cleansed becomes a per-row issue; no row is dropped. Each page reports its cursor, so in a
worker the phase commits progressively and a run taken over after a crash resumes after the
last committed page.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.adapters import cleansing_chunks, findings, inventory, mappings, profiles
from discovery_svc.adapters.cleansing_pool import CleansingPool, default_processes
from discovery_svc.domain.cleansing import CleansedBatch, RowCleanser
from discovery_svc.domain.model import ChildFlow
from discovery_svc.normalize.asset_types import export_type
from discovery_svc.normalize.units import column_unit, header_unit
from discovery_svc.phases.base import (
    Checkpointing,
    Cursor,
    NoCheckpoints,
    PhaseFailed,
    PhaseOutcome,
    flow_import,
)
from flowpair_shared.domain import Phase, PhaseStatus

_SIZES = ("memory_gb", "storage_gb")


class DataCleansing:
    phase: ClassVar[Phase] = Phase.DATA_CLEANSING
    timeout: ClassVar[float] = 1800.0

    def __init__(self, processes: int | None = None) -> None:
        self.processes = default_processes() if processes is None else processes
        """Processes that cleanse an import of more than one page (0: this process)."""

    async def run(self, child: ChildFlow, conn: AsyncConnection) -> PhaseOutcome:
        return await self.run_resumable(child, conn, NoCheckpoints())

    async def run_resumable(
        self, child: ChildFlow, conn: AsyncConnection, checkpoints: Checkpointing
    ) -> PhaseOutcome:
        mapping = await mappings.get(conn, child.id, child.confidence_threshold)
        if mapping is None or not mapping.approved:
            raise PhaseFailed("MAPPING_NOT_APPROVED", "the attribute mapping is not approved")
        found = await flow_import(conn, child)
        profile = await profiles.get(conn, child.id)
        samples = {c.position: c.sample_values for c in profile.columns} if profile else {}
        columns: dict[int, str] = {}
        hints: dict[str, str | None] = {}
        # A column feeding several attributes is read once per extra attribute, as a copy
        # appended after the import's columns, so the cleanser keeps one attribute per index.
        copies: list[int] = []
        width = max((m.position for m in mapping.mappings), default=0)
        for m in mapping.mappings:
            for k, target in enumerate(m.usable_targets):
                index = m.position - 1
                if k:
                    index = width + len(copies)
                    copies.append(m.position - 1)
                columns[index] = target
                if target in _SIZES:
                    # The unit of bare numbers, from the header and the values together; with
                    # a unit column, the header's unit (if any) for rows that leave it blank.
                    sample = samples.get(m.position, [])
                    if mapping.unit_column_of(target) is None:
                        hints[target] = column_unit(target, m.source_column, sample).unit
                    else:
                        hints[target] = header_unit(m.source_column)
            if m.custom_attribute is not None:
                columns[m.position - 1] = f"custom:{m.custom_attribute}"
        cleanser = RowCleanser(
            columns,
            memory_unit_hint=hints.get("memory_gb"),
            storage_unit_hint=hints.get("storage_gb"),
            export_type=export_type([m.source_column for m in mapping.mappings]),
        )
        cursor = checkpoints.resume_from
        if cursor is None:
            await inventory.clear_cleansed(conn, child.id)
            cursor = Cursor()
        else:
            await cleansing_chunks.discard_after(conn, child.id, cursor.after_row)
        first = await cleansing_chunks.raw_page(conn, found.storage_id, after_row=cursor.after_row)
        # A pool costs a process start; an import of one page is done before it would start.
        processes = self.processes if len(first) >= cleansing_chunks.PAGE_ROWS else 0
        pool = CleansingPool(cleanser, width=width, copies=copies, processes=processes)
        # Pages in flight: each page's last row number and its cleansing. The next pages are
        # read and cleansed while the oldest is written and checkpointed.
        flight: deque[tuple[int, asyncio.Task[CleansedBatch]]] = deque()
        try:
            page, after = first, cursor.after_row
            while page or flight:
                while page and len(flight) < pool.depth:
                    numbered = [(int(n), values) for n, values in page]
                    after = numbered[-1][0]
                    flight.append((after, asyncio.ensure_future(pool.cleanse(numbered))))
                    page = await cleansing_chunks.raw_page(conn, found.storage_id, after_row=after)
                last, cleansing = flight.popleft()
                batch = await cleansing
                await inventory.copy_cleansed(conn, child.id, batch)
                cursor = Cursor(
                    after_row=last,
                    rows=cursor.rows + len(batch.rows),
                    issues=cursor.issues + len(batch.issues),
                )
                await checkpoints.reached(conn, cursor, len(batch.rows))
        finally:
            for _, pending in flight:
                pending.cancel()
        rows, issues = cursor.rows, cursor.issues
        await inventory.analyze(conn, "cleansed_records")
        await findings.record(conn, child.id, self.phase, rows_in=rows)
        return PhaseOutcome(PhaseStatus.COMPLETED, f"{rows} rows cleansed, {issues} issue(s)")
