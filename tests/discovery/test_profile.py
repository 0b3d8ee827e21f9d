"""build_profile(): the flags read consistently with the inferred types and with each other."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery_svc.domain.patterns import ValueKind
from discovery_svc.domain.profile import ColumnCounts, DataFlag, build_profile, percent
from tests.discovery.profiling import data_profile

REAL_EXPORT = (
    Path(__file__).resolve().parents[2]
    / "examples"
    / "realdata"
    / "servicenow_style_cmdb_export.csv"
)


def _counts(name: str, *, empty: int, distinct: int, matches: dict[ValueKind, int]) -> ColumnCounts:
    return ColumnCounts(1, name, empty, distinct, 0, matches, [], 0, 0, [])


def _flags(rows: int, c: ColumnCounts) -> list[DataFlag]:
    profile = build_profile(
        import_id="i", master_flow_id="m", row_count=rows, quarantined_count=0, counts=[c]
    )
    return profile.flags


@pytest.mark.parametrize(
    ("part", "whole", "text"),
    [(0, 10, "0%"), (1, 1000, "1%"), (999, 1000, "99%"), (10, 10, "100%"), (1, 3, "33%")],
)
def test_a_percentage_never_rounds_a_share_to_all_or_none(part: int, whole: int, text: str) -> None:
    assert percent(part, whole) == text


def test_repeated_words_that_look_like_host_names_are_not_called_mixed() -> None:
    flags = _flags(
        100, _counts("Environment", empty=0, distinct=3, matches={ValueKind.HOSTNAME: 100})
    )
    assert [(f.code, f.column) for f in flags] == [("REPEATED_WORDS", "Environment")]
    assert "the rest" not in flags[0].message
    assert "only 3 distinct values" in flags[0].message


def test_a_mixed_column_counts_both_parts_of_the_non_empty_values() -> None:
    flags = _flags(100, _counts("Address", empty=20, distinct=80, matches={ValueKind.IPV4: 50}))
    [mixed] = [f for f in flags if f.code == "MIXED_VALUES"]
    assert mixed.message == (
        "50 of the 80 non-empty values (62%) are IPv4 addresses; the other 30 (38%) are not"
    )


def test_mostly_empty_counts_rows() -> None:
    flags = _flags(200, _counts("Notes", empty=199, distinct=1, matches={}))
    assert [(f.code, f.message) for f in flags] == [
        ("MOSTLY_EMPTY_COLUMN", "199 of 200 rows (99%) have no value")
    ]


def test_no_flag_on_the_real_export_says_all_and_the_rest() -> None:
    profile = data_profile(REAL_EXPORT.read_text(encoding="utf-8-sig"))
    assert profile.flags
    for f in profile.flags:
        assert not ("100%" in f.message and "the other" in f.message), f
        assert not f.message.startswith("0%"), f
