"""The reviewable mapping of a flow: suggestions, a person's edits, and approval rules."""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from flowpair_shared.errors import Aborted, FailedPrecondition, FieldViolation, InvalidArgument

REQUIRED = (
    "asset_name",
    "asset_type",
    "hostname",
    "ip_address",
    "operating_system",
    "cpu_cores",
    "memory_gb",
)
OPTIONAL = (
    "storage_gb",
    "environment",
    "application_name",
    "owner",
    "location",
    "os_version",
    "business_criticality",
    "virtualization_platform",
    "serial_number",
    "asset_tag",
    "department",
    "data_center",
    "depends_on",
    "domain",
    "cores_per_socket",
    "memory_unit",
    "storage_unit",
)
COMPANIONS = {
    "memory_unit": "memory_gb",
    "storage_unit": "storage_gb",
    "cores_per_socket": "cpu_cores",
}
"""Attributes that qualify another one row by row (its unit, a multiplier), not the asset."""
_UNITS = frozenset({"memory_unit", "storage_unit"})
TARGET_ATTRIBUTES = REQUIRED + OPTIONAL
_CUSTOM_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
ETAG_FORMAT = re.compile(r'W/"[1-9][0-9]{0,17}"')
"""What ``MappingSet.etag`` writes; anything else was never an etag of a mapping set."""


class State(enum.Enum):
    """Mirrors ``MappingState`` in the protos (by name)."""

    SUGGESTED = "suggested"
    AMBIGUOUS = "ambiguous"
    UNMAPPED = "unmapped"
    APPROVED = "approved"
    REJECTED = "rejected"
    CUSTOM = "custom"


@dataclass(frozen=True)
class FieldMapping:
    position: int
    source_column: str
    target_attribute: str | None
    confidence: float
    reason: str
    state: State
    alternatives: tuple[str, ...] = ()
    custom_attribute: str | None = None
    also_targets: tuple[str, ...] = ()
    """Further attributes the same values fill (a "CI Name" of host names is also hostname)."""
    warnings: tuple[str, ...] = ()
    """What a person should look at before approving (values implausible for the target)."""

    @property
    def usable_target(self) -> str | None:
        """The primary attribute this column fills once approved, if any."""
        if self.state in (State.SUGGESTED, State.APPROVED):
            return self.target_attribute
        return None

    @property
    def usable_targets(self) -> tuple[str, ...]:
        """Every attribute this column fills once approved: the primary one first."""
        if self.usable_target is None:
            return ()
        return (self.usable_target, *self.also_targets)


@dataclass(frozen=True)
class Update:
    """One edit of a column's mapping; exactly one action is set."""

    source_column: str
    approve: bool = False
    reject: bool = False
    remap_to: str | None = None
    custom_attribute: str | None = None
    also_map_to: tuple[str, ...] | None = None
    """Replace the column's additional targets (it keeps its own target)."""


@dataclass(frozen=True)
class MappingSet:
    mappings: tuple[FieldMapping, ...]
    version: int
    approved: bool
    threshold: float
    waived: tuple[str, ...] = ()
    """Required attributes the data does not have, acknowledged by the approver."""

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    def approved_as_is(self) -> MappingSet:
        """The set approved: a suggestion nobody changed counts as accepted, and says so (a
        reader of the approved set must not see suggestions still waiting for a review)."""
        return replace(
            self,
            approved=True,
            mappings=tuple(
                replace(m, state=State.APPROVED) if m.state == State.SUGGESTED else m
                for m in self.mappings
            ),
        )

    def missing_required(self) -> list[str]:
        mapped = {t for m in self.mappings for t in m.usable_targets}
        return [a for a in REQUIRED if a not in mapped and a not in self.waived]

    def unit_column_of(self, size: str) -> str | None:
        """The column giving ``size``'s unit row by row, if one is mapped: then the values'
        spread says nothing about a column-wide unit."""
        for m in self.mappings:
            if any(t in _UNITS and COMPANIONS[t] == size for t in m.usable_targets):
                return m.source_column
        return None

    def auto_approvable(self) -> bool:
        """Every required attribute suggested with at least the threshold, nothing ambiguous."""
        # Auto-approval skips _check_approvable, so an ambiguous column must stop it here.
        if any(m.state == State.AMBIGUOUS for m in self.mappings):
            return False
        confident = {
            t
            for m in self.mappings
            if m.state == State.SUGGESTED and m.confidence >= self.threshold
            for t in m.usable_targets
        }
        return all(a in confident for a in REQUIRED)

    def updated(
        self,
        etag: str,
        updates: Sequence[Update],
        *,
        approve: bool,
        waive: Sequence[str] = (),
    ) -> MappingSet:
        """Apply a person's edits (and approval); refuse stale, malformed or incomplete ones.
        ``etag`` is required: an edit without one could overwrite a change it never saw."""
        if self.approved:
            raise FailedPrecondition(
                "the mapping is already approved; it cannot change any more",
                reason="MAPPING_APPROVED",
            )
        if etag != self.etag:
            raise Aborted(f"the mapping changed since etag {etag}; it is now {self.etag}")
        by_column = {m.source_column: m for m in self.mappings}
        violations: list[FieldViolation] = []
        for i, u in enumerate(updates):
            field = f"updates[{i}]"
            current = by_column.get(u.source_column)
            if current is None:
                violations.append(
                    FieldViolation(f"{field}.source_column", f"no column {u.source_column!r}")
                )
                continue
            changed = _apply(current, u, field, violations)
            if changed is not None:
                by_column[u.source_column] = changed
        for i, attribute in enumerate(waive):
            if attribute not in REQUIRED:
                violations.append(
                    FieldViolation(
                        f"waive_required_attributes[{i}]",
                        f"{attribute!r} is not a required attribute ({', '.join(REQUIRED)})",
                    )
                )
        if violations:
            raise InvalidArgument(violations)
        result = replace(
            self,
            mappings=tuple(by_column[m.source_column] for m in self.mappings),
            version=self.version + 1,
            waived=tuple(a for a in REQUIRED if a in self.waived or a in waive),
        )
        if approve:
            result._check_approvable()
            result = result.approved_as_is()
        return result

    def _check_approvable(self) -> None:
        problems: list[str] = []
        missing = self.missing_required()
        if missing:
            problems.append("required attributes not mapped: " + ", ".join(missing))
        mapped = {t for m in self.mappings for t in m.usable_targets}
        problems.extend(
            f"{companion} qualifies {main}, which no column gives"
            for companion, main in COMPANIONS.items()
            if companion in mapped and main not in mapped
        )
        ambiguous = [m.source_column for m in self.mappings if m.state == State.AMBIGUOUS]
        if ambiguous:
            problems.append("ambiguous columns to resolve: " + ", ".join(ambiguous))
        seen: dict[str, str] = {}
        for m in self.mappings:
            targets = m.usable_targets
            if m.state == State.CUSTOM:
                targets = (f"custom attribute {m.custom_attribute}",)
            for target in targets:
                if target in seen:
                    problems.append(
                        f"{target} is mapped from both {seen[target]!r} and {m.source_column!r}"
                    )
                seen[target] = m.source_column
        if problems:
            raise FailedPrecondition(
                "the mapping cannot be approved: " + "; ".join(problems),
                reason="MAPPING_INCOMPLETE",
                subject=", ".join(missing),
            )


def _apply(
    m: FieldMapping, u: Update, field: str, violations: list[FieldViolation]
) -> FieldMapping | None:
    actions = sum(
        [
            u.approve,
            u.reject,
            u.remap_to is not None,
            u.custom_attribute is not None,
            u.also_map_to is not None,
        ]
    )
    if actions != 1:
        violations.append(FieldViolation(field, "set exactly one action"))
        return None
    if u.approve:
        if m.target_attribute is None:
            violations.append(
                FieldViolation(f"{field}.approve", f"{m.source_column!r} has no target to approve")
            )
            return None
        return replace(m, state=State.APPROVED, custom_attribute=None)
    if u.reject:
        return replace(m, state=State.REJECTED, custom_attribute=None, also_targets=(), warnings=())
    if u.also_map_to is not None:
        return _also(m, u.also_map_to, f"{field}.set_additional_targets", violations)
    if u.remap_to is not None:
        if u.remap_to not in TARGET_ATTRIBUTES:
            violations.append(
                FieldViolation(f"{field}.remap_to", f"unknown target attribute {u.remap_to!r}")
            )
            return None
        return replace(
            m,
            target_attribute=u.remap_to,
            state=State.APPROVED,
            confidence=1.0,
            reason=f"mapped by a person (was: {m.reason})",
            custom_attribute=None,
            also_targets=(),
            warnings=(),
        )
    assert u.custom_attribute is not None
    if not _CUSTOM_NAME.fullmatch(u.custom_attribute) or u.custom_attribute in TARGET_ATTRIBUTES:
        violations.append(
            FieldViolation(
                f"{field}.custom_attribute",
                "must be lower_snake_case (a letter, then letters, digits or _), up to 63"
                " characters, and not a standard attribute",
            )
        )
        return None
    return replace(
        m,
        state=State.CUSTOM,
        custom_attribute=u.custom_attribute,
        target_attribute=None,
        also_targets=(),
        warnings=(),
    )


def _also(
    m: FieldMapping, targets: tuple[str, ...], field: str, violations: list[FieldViolation]
) -> FieldMapping | None:
    if m.target_attribute is None or m.state not in (State.SUGGESTED, State.APPROVED):
        violations.append(
            FieldViolation(field, f"{m.source_column!r} has no target attribute to add to")
        )
        return None
    bad = [
        f"{t!r} is {'its target' if t == m.target_attribute else 'listed twice'}"
        if t in TARGET_ATTRIBUTES
        else f"unknown target attribute {t!r}"
        for i, t in enumerate(targets)
        if t not in TARGET_ATTRIBUTES or t == m.target_attribute or t in targets[:i]
    ]
    if bad:
        violations.append(FieldViolation(f"{field}.target_attributes", "; ".join(bad)))
        return None
    return replace(m, state=State.APPROVED, also_targets=targets)
