"""DATA_CLEANSING: applies the approved mapping to every raw row and normalises values.

Rows stream through a server-side cursor and are written back with COPY in batches; the
normalisers are memoised, since inventory columns repeat the same values many times. A value
that cannot be cleansed becomes a per-row issue; no row is dropped.
"""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.adapters import inventory, mappings, profiles
from discovery_svc.domain.cleansing import RowCleanser
from discovery_svc.domain.model import ChildFlow
from discovery_svc.normalize.units import column_unit
from discovery_svc.phases.base import PhaseFailed, PhaseOutcome, flow_import
from flowpair_shared.domain import Phase, PhaseStatus

_SIZES = ("memory_gb", "storage_gb")


class DataCleansing:
    phase: ClassVar[Phase] = Phase.DATA_CLEANSING
    timeout: ClassVar[float] = 1800.0

    async def run(self, child: ChildFlow, conn: AsyncConnection) -> PhaseOutcome:
        mapping = await mappings.get(conn, child.id, child.confidence_threshold)
        if mapping is None or not mapping.approved:
            raise PhaseFailed("MAPPING_NOT_APPROVED", "the attribute mapping is not approved")
        found = await flow_import(conn, child)
        profile = await profiles.get(conn, child.id)
        samples = {c.position: c.sample_values for c in profile.columns} if profile else {}
        columns: dict[int, str] = {}
        hints: dict[str, str | None] = {}
        for m in mapping.mappings:
            if m.usable_target is not None:
                columns[m.position - 1] = m.usable_target
                if m.usable_target in _SIZES:
                    # The unit of bare numbers, from the header and the values together.
                    sample = samples.get(m.position, [])
                    hints[m.usable_target] = column_unit(
                        m.usable_target, m.source_column, sample
                    ).unit
            elif m.custom_attribute is not None:
                columns[m.position - 1] = f"custom:{m.custom_attribute}"
        cleanser = RowCleanser(
            columns,
            memory_unit_hint=hints.get("memory_gb"),
            storage_unit_hint=hints.get("storage_gb"),
        )
        await inventory.clear_cleansed(conn, child.id)
        rows = issues = 0
        async for batch in inventory.raw_batches(conn, found.storage_id):
            out: list[tuple[object, int, str]] = []
            problems: list[tuple[object, int, str, str, str]] = []
            for row_number, values in batch:
                cleansed = cleanser.cleanse(values)
                out.append((child.id, row_number, inventory.to_json(cleansed.values)))
                problems.extend(
                    (child.id, row_number, i.attribute, i.value, i.problem) for i in cleansed.issues
                )
            await inventory.copy_cleansed(conn, out, problems)  # type: ignore[arg-type]
            rows += len(out)
            issues += len(problems)
        await inventory.analyze(conn, "cleansed_records")
        return PhaseOutcome(PhaseStatus.COMPLETED, f"{rows} rows cleansed, {issues} issue(s)")
