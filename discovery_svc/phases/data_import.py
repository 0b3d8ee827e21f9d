"""DATA_IMPORT: binds the flow's uploaded import, checking it exists for the tenant."""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.domain.model import ChildFlow
from discovery_svc.phases.base import PhaseOutcome, flow_import
from flowpair_shared.domain import Phase, PhaseStatus


class DataImport:
    phase: ClassVar[Phase] = Phase.DATA_IMPORT
    timeout: ClassVar[float] = 60.0

    async def run(self, child: ChildFlow, conn: AsyncConnection) -> PhaseOutcome:
        found = await flow_import(conn, child)
        return PhaseOutcome(
            PhaseStatus.COMPLETED,
            f"imports/{found.id}: {found.row_count} rows, {len(found.columns)} columns,"
            f" {found.quarantined_count} quarantined",
        )
