"""DATA_IMPORT: binds the flow's uploaded import, checking it exists for the tenant."""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.adapters import imports, repository
from discovery_svc.domain.model import ChildFlow
from discovery_svc.phases.base import PhaseFailed, PhaseOutcome
from flowpair_shared.domain import Phase, PhaseStatus


class DataImport:
    phase: ClassVar[Phase] = Phase.DATA_IMPORT
    timeout: ClassVar[float] = 60.0

    async def run(self, child: ChildFlow, conn: AsyncConnection) -> PhaseOutcome:
        if child.import_id is None:
            raise PhaseFailed("IMPORT_MISSING", "the flow was created without an import")
        found = await imports.get(conn, repository.tenant_of(child), child.import_id)
        if found is None:
            raise PhaseFailed(
                "IMPORT_NOT_FOUND",
                f"imports/{child.import_id} was not found for this engagement; upload it with"
                f" UploadImportData (metadata.import_id = {child.import_id}), then RetryPhase"
                " DATA_IMPORT",
            )
        return PhaseOutcome(
            PhaseStatus.COMPLETED,
            f"imports/{found.id}: {found.row_count} rows, {len(found.columns)} columns,"
            f" {found.quarantined_count} quarantined",
        )
