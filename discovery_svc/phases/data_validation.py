"""DATA_VALIDATION: profiles every column of the flow's import and flags problems."""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.adapters import profiles
from discovery_svc.domain.model import ChildFlow
from discovery_svc.domain.profile import Severity, build_profile
from discovery_svc.phases.base import PhaseOutcome, flow_import
from flowpair_shared.domain import Phase, PhaseStatus


class DataValidation:
    phase: ClassVar[Phase] = Phase.DATA_VALIDATION
    timeout: ClassVar[float] = 600.0

    async def run(self, child: ChildFlow, conn: AsyncConnection) -> PhaseOutcome:
        found = await flow_import(conn, child)
        counts = await profiles.count_columns(conn, found.storage_id, found.columns)
        profile = build_profile(
            import_id=str(found.id),
            master_flow_id=str(child.master_flow_id),
            row_count=found.row_count,
            quarantined_count=found.quarantined_count,
            counts=counts,
        )
        await profiles.replace(conn, child.id, profile)
        warnings = sum(1 for f in profile.flags if f.severity >= Severity.WARNING)
        return PhaseOutcome(
            PhaseStatus.COMPLETED,
            f"{len(profile.columns)} columns profiled, {warnings} warning(s)",
        )
