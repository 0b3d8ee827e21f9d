"""The findings rules: which kinds a filter admits and which columns feed an attribute."""

from __future__ import annotations

from discovery_svc.domain.findings import RULES, IssueKind, columns_by_attribute, kinds_of
from discovery_svc.domain.mapping_set import FieldMapping, MappingSet, State
from discovery_svc.domain.profile import Severity
from flowpair_shared.domain import Phase


def test_every_kind_has_one_phase_and_severity() -> None:
    assert set(RULES) == set(IssueKind)
    assert RULES[IssueKind.ROW_WITHOUT_ASSET].severity == Severity.ERROR
    assert RULES[IssueKind.ROW_WITHOUT_ASSET].whole_row
    assert RULES[IssueKind.INVALID_VALUE].phase == Phase.DATA_CLEANSING


def test_filters_combine() -> None:
    assert kinds_of(None, None) == list(IssueKind)
    assert kinds_of(Severity.ERROR, None) == [IssueKind.ROW_WITHOUT_ASSET]
    assert kinds_of(Severity.INFO, None) == []
    assert kinds_of(Severity.ERROR, IssueKind.INVALID_VALUE) == []
    assert kinds_of(None, IssueKind.INVALID_VALUE) == [IssueKind.INVALID_VALUE]


def test_a_shared_column_feeds_each_of_its_attributes() -> None:
    mapping = MappingSet(
        (
            FieldMapping(
                1, "CI Name", "asset_name", 0.9, "r", State.APPROVED, (), None, ("hostname",)
            ),
            FieldMapping(2, "Notes", None, 0.0, "r", State.CUSTOM, (), "notes"),
            FieldMapping(3, "Junk", "owner", 0.9, "r", State.REJECTED),
        ),
        version=2,
        approved=True,
        threshold=0.85,
    )
    assert columns_by_attribute(mapping) == {
        "asset_name": ("CI Name",),
        "hostname": ("CI Name",),
        "notes": ("Notes",),
    }
    assert columns_by_attribute(None) == {}
