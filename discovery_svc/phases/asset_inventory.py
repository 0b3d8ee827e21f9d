"""ASSET_INVENTORY: upserts the flow's assets, deduplicated within the engagement."""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.adapters import findings, inventory, repository
from discovery_svc.domain.model import ChildFlow
from discovery_svc.phases.base import PhaseFailed, PhaseOutcome
from flowpair_shared.domain import Phase, PhaseStatus


class AssetInventory:
    phase: ClassVar[Phase] = Phase.ASSET_INVENTORY
    timeout: ClassVar[float] = 1800.0

    async def run(self, child: ChildFlow, conn: AsyncConnection) -> PhaseOutcome:
        if child.import_id is None:
            raise PhaseFailed("IMPORT_MISSING", "the flow was created without an import")
        linked, unkeyed = await inventory.build_assets(
            conn, repository.tenant_of(child), child.id, child.import_id, child.identity_key
        )
        await findings.record(conn, child.id, self.phase)
        return PhaseOutcome(
            PhaseStatus.COMPLETED,
            f"{linked} assets from this flow; {unkeyed} row(s) without an identifier",
        )
