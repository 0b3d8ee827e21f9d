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
from discovery_svc.domain.profile import DataProfile
from discovery_svc.normalize.units import implausibility
from discovery_svc.phases.base import PhaseFailed, PhaseOutcome
from flowpair_shared.domain import Phase, PhaseStatus


def _flag_implausible(mapping: MappingSet, profile: DataProfile) -> tuple[MappingSet, list[str]]:
    """The mapping with a warning on each column whose values are implausible
    for its attribute (so a person sees it before approving), and those columns' names."""
    samples = {c.position: c.sample_values for c in profile.columns}
    flagged, columns = [], []
    for m in mapping.mappings:
        target = m.usable_target
        problem = None
        if target is not None and mapping.unit_column_of(target) is None:
            problem = implausibility(target, m.source_column, samples.get(m.position, []))
        if problem is not None:
            m = replace(m, warnings=(*m.warnings, problem))
            columns.append(m.source_column)
        flagged.append(m)
    return replace(mapping, mappings=tuple(flagged)), columns


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
        mapping, implausible = _flag_implausible(mapping, profile)
        if child.auto_approve and mapping.auto_approvable() and not implausible:
            await mappings.save(conn, child.id, mapping.approved_as_is())
            return PhaseOutcome(PhaseStatus.COMPLETED, "auto-approved")
        await mappings.save(conn, child.id, mapping)
        summary = "waiting for approval"
        if missing:
            summary += "; required attributes not mapped: " + ", ".join(missing)
        if implausible:
            summary += "; implausible values in: " + ", ".join(implausible)
        return PhaseOutcome(PhaseStatus.WAITING_FOR_APPROVAL, summary)
