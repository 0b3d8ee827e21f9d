"""DEPENDENCY_ANALYSIS: application → server relations from application columns, and
server → server / → database relations from "depends on"-style columns."""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.adapters import findings, inventory, repository
from discovery_svc.domain.model import ChildFlow
from discovery_svc.phases.base import PhaseFailed, PhaseOutcome
from flowpair_shared.domain import Phase, PhaseStatus


class DependencyAnalysis:
    phase: ClassVar[Phase] = Phase.DEPENDENCY_ANALYSIS
    timeout: ClassVar[float] = 1800.0

    async def run(self, child: ChildFlow, conn: AsyncConnection) -> PhaseOutcome:
        if child.import_id is None:
            raise PhaseFailed("IMPORT_MISSING", "the flow was created without an import")
        count = await inventory.build_dependencies(
            conn, repository.tenant_of(child), child.id, child.import_id
        )
        await findings.record(conn, child.id, self.phase)
        return PhaseOutcome(PhaseStatus.COMPLETED, f"{count} dependencies")
