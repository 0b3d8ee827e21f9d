"""ATTRIBUTE_MAPPING: the approval gate. Mapping suggestions are a later capability; until
then the phase stops at the gate, which is where it stops for a person's approval anyway."""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.domain.model import ChildFlow
from discovery_svc.phases.base import PhaseOutcome
from flowpair_shared.domain import Phase, PhaseStatus


class AttributeMapping:
    phase: ClassVar[Phase] = Phase.ATTRIBUTE_MAPPING
    timeout: ClassVar[float] = 600.0

    async def run(self, child: ChildFlow, conn: AsyncConnection) -> PhaseOutcome:
        return PhaseOutcome(PhaseStatus.WAITING_FOR_APPROVAL, "waiting for approval")
