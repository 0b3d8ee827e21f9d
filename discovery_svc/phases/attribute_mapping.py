"""ATTRIBUTE_MAPPING: suggests a target attribute per column, then waits for a person unless
the flow asked for auto-approval and every required attribute is confidently mapped."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.adapters import mappings, profiles
from discovery_svc.domain.mapping import suggest
from discovery_svc.domain.mapping_set import MappingSet
from discovery_svc.domain.model import ChildFlow
from discovery_svc.normalize.units import implausible_columns
from discovery_svc.phases.base import PhaseFailed, PhaseOutcome
from flowpair_shared.domain import Phase, PhaseStatus


class AttributeMapping:
    phase: ClassVar[Phase] = Phase.ATTRIBUTE_MAPPING
    timeout: ClassVar[float] = 120.0

    async def run(self, child: ChildFlow, conn: AsyncConnection) -> PhaseOutcome:
        profile = await profiles.get(conn, child.id)
        if profile is None:
            raise PhaseFailed("PROFILE_MISSING", "DATA_VALIDATION has not produced a profile")
        previous = await mappings.get(conn, child.id, child.confidence_threshold)
        mapping = MappingSet(
            tuple(suggest(profile.columns)),
            version=(previous.version + 1) if previous else 1,
            approved=False,
            threshold=child.confidence_threshold,
        )
        missing = mapping.missing_required()
        samples = {c.position: c.sample_values for c in profile.columns}
        implausible = implausible_columns(
            (m.usable_target, m.source_column, samples.get(m.position, []))
            for m in mapping.mappings
            if m.usable_target is not None
        )
        if child.auto_approve and mapping.auto_approvable() and not implausible:
            await mappings.save(conn, child.id, replace(mapping, approved=True))
            return PhaseOutcome(PhaseStatus.COMPLETED, "auto-approved")
        await mappings.save(conn, child.id, mapping)
        summary = "waiting for approval"
        if missing:
            summary += "; required attributes not mapped: " + ", ".join(missing)
        if implausible:
            # Flagged before anyone approves; the rows' values become issues, never stored.
            summary += "; implausible values: " + "; ".join(implausible)
        return PhaseOutcome(PhaseStatus.WAITING_FOR_APPROVAL, summary)
