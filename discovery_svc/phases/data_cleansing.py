"""DATA_CLEANSING: applies the approved mapping to every raw row and normalises values.

Rows are read in pages by row number and written back with COPY; the normalisers are
memoised, since inventory columns repeat the same values many times. A value that cannot be
cleansed becomes a per-row issue; no row is dropped. Each page reports its cursor, so in a
worker the phase commits progressively and a run taken over after a crash resumes after the
last committed page.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.adapters import cleansing_chunks, findings, inventory, mappings, profiles
from discovery_svc.domain.cleansing import RowCleanser
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
_YIELD_ROWS = 250


def _with_copies(values: Sequence[str], width: int, copies: Sequence[int]) -> list[str]:
    """The row padded to ``width``, then the values of the ``copies`` columns again."""
    row = [*values[:width], *([""] * (width - len(values)))]
    return row + [row[i] for i in copies]


class DataCleansing:
    phase: ClassVar[Phase] = Phase.DATA_CLEANSING
    timeout: ClassVar[float] = 1800.0

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
        while batch := await cleansing_chunks.raw_page(
            conn, found.storage_id, after_row=cursor.after_row
        ):
            out: list[tuple[object, int, str]] = []
            problems: list[tuple[object, int, str, str, str]] = []
            for n, (row_number, values) in enumerate(batch, 1):
                if n % _YIELD_ROWS == 0:
                    # The cleanser is CPU work: let the loop's other tasks (the job's lease
                    # renewal first) run between rows, or a page outlasts a short lease.
                    await asyncio.sleep(0)
                if copies:
                    values = _with_copies(values, width, copies)
                cleansed = cleanser.cleanse(values)
                out.append((child.id, row_number, inventory.to_json(cleansed.values)))
                problems.extend(
                    (child.id, row_number, i.attribute, i.value, i.problem) for i in cleansed.issues
                )
            await inventory.copy_cleansed(conn, out, problems)  # type: ignore[arg-type]
            cursor = Cursor(
                after_row=batch[-1][0],
                rows=cursor.rows + len(out),
                issues=cursor.issues + len(problems),
            )
            await checkpoints.reached(conn, cursor, len(out))
        rows, issues = cursor.rows, cursor.issues
        await inventory.analyze(conn, "cleansed_records")
        await findings.record(conn, child.id, self.phase, rows_in=rows)
        return PhaseOutcome(PhaseStatus.COMPLETED, f"{rows} rows cleansed, {issues} issue(s)")
