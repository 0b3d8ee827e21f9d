"""Findings: the issues a flow's phases recorded, and what each data phase did with the rows.

Each kind of issue belongs to the phase that records it and has one severity: decided here,
once, so the API and the per-phase summary cannot disagree.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from discovery_svc.domain.mapping_set import MappingSet
from discovery_svc.domain.profile import Severity
from flowpair_shared.domain import Phase


class IssueKind(enum.Enum):
    """Mirrors ``DataIssueKind`` in the protos (by name); ``value`` is the stored text."""

    INVALID_VALUE = "invalid_value"
    ROW_WITHOUT_ASSET = "row_without_asset"
    UNRESOLVED_DEPENDENCY = "unresolved_dependency"
    IDENTITY = "identity"


@dataclass(frozen=True)
class KindRule:
    """The phase that records a kind, its severity, and whether it concerns a whole row."""

    phase: Phase
    severity: Severity
    whole_row: bool = False


RULES: Mapping[IssueKind, KindRule] = {
    IssueKind.INVALID_VALUE: KindRule(Phase.DATA_CLEANSING, Severity.WARNING),
    IssueKind.ROW_WITHOUT_ASSET: KindRule(Phase.ASSET_INVENTORY, Severity.ERROR, whole_row=True),
    IssueKind.UNRESOLVED_DEPENDENCY: KindRule(Phase.DEPENDENCY_ANALYSIS, Severity.WARNING),
    IssueKind.IDENTITY: KindRule(Phase.ASSET_INVENTORY, Severity.WARNING),
}

SUMMARISED = (Phase.DATA_CLEANSING, Phase.ASSET_INVENTORY, Phase.DEPENDENCY_ANALYSIS)
"""The data phases a child flow summarises, in execution order."""


def kinds_of(severity: Severity | None, kind: IssueKind | None) -> list[IssueKind]:
    """The kinds a (severity, kind) filter admits; either may be unset."""
    return [
        k
        for k, rule in RULES.items()
        if (kind is None or k == kind) and (severity is None or rule.severity == severity)
    ]


def columns_by_attribute(mapping: MappingSet | None) -> dict[str, tuple[str, ...]]:
    """Target attribute → the source columns that feed it under ``mapping``."""
    out: dict[str, tuple[str, ...]] = {}
    if mapping is None:
        return out
    for m in mapping.mappings:
        targets = list(m.usable_targets)
        if m.custom_attribute is not None:
            targets.append(m.custom_attribute)
        for t in targets:
            out[t] = (*out.get(t, ()), m.source_column)
    return out


@dataclass(frozen=True)
class IssueFilter:
    """What ListDataIssues asks for; ``None``/empty means any."""

    kinds: tuple[IssueKind, ...]
    attributes: tuple[str, ...] | None = None
    """Only issues about these attributes (and so never whole-row ones)."""
    row_number: int | None = None

    @property
    def query(self) -> str:
        """A stable text of the filter, to bind page tokens to it."""
        attrs = "*" if self.attributes is None else ",".join(sorted(self.attributes))
        return f"{','.join(k.value for k in self.kinds)}|{attrs}|{self.row_number or ''}"


@dataclass(frozen=True)
class DataIssue:
    id: int
    row_number: int
    kind: IssueKind
    attribute: str
    value: str
    problem: str

    @property
    def rule(self) -> KindRule:
        return RULES[self.kind]


@dataclass(frozen=True)
class IssueCount:
    kind: IssueKind
    count: int
    row_count: int


@dataclass(frozen=True)
class PhaseSummary:
    """What one data phase did with the rows (see ``PhaseSummary`` in the protos)."""

    phase: Phase
    rows_in: int
    rows_out: int
    issue_counts: Sequence[IssueCount] = field(default_factory=tuple)
    assets_created: int = 0
    assets_updated: int = 0
    assets_merged: int = 0
    dependencies: int = 0
