"""Column profiles and data-quality flags: how DATA_VALIDATION reads aggregate counts.

The counting happens in SQL (``adapters/profiles.py``); this module decides, from those
counts and the header names, each column's kind, which columns should identify a row, and
what deserves a flag. Plain Python, so the rules are tested without a database.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime

from discovery_svc.domain.patterns import ValueKind

DOMINANT = 0.8
"""A kind is a column's type when at least this fraction of its non-empty values match."""
REPORTED = 0.05
"""Kinds matched by fewer non-empty values are not listed."""

# When several kinds pass DOMINANT the more specific wins (an IP is also digits and dots).
_PRECEDENCE = (
    ValueKind.UUID,
    ValueKind.IPV4,
    ValueKind.IPV6,
    ValueKind.EMAIL,
    ValueKind.FQDN,
    ValueKind.DATE,
    ValueKind.SIZE,
    ValueKind.OS,
    ValueKind.BOOLEAN,
    ValueKind.INTEGER,
    ValueKind.DECIMAL,
    ValueKind.HOSTNAME,
)
_IDENTIFYING = {ValueKind.UUID, ValueKind.IPV4, ValueKind.IPV6, ValueKind.FQDN, ValueKind.HOSTNAME}
_KEY_WORDS = re.compile(r"(^|[^a-z])(name|host|hostname|fqdn|ip|serial|id|uuid)([^a-z]|$)")


_DESCRIPTIONS = {
    ValueKind.IPV4.value: "IPv4 addresses",
    ValueKind.IPV6.value: "IPv6 addresses",
    ValueKind.FQDN.value: "fully qualified domain names",
    ValueKind.HOSTNAME.value: "host names",
    ValueKind.OS.value: "operating-system names",
    ValueKind.SIZE.value: "sizes",
    ValueKind.INTEGER.value: "integers",
    ValueKind.DECIMAL.value: "decimals",
    ValueKind.DATE.value: "dates",
    ValueKind.BOOLEAN.value: "true/false values",
    ValueKind.EMAIL.value: "e-mail addresses",
    ValueKind.UUID.value: "UUIDs",
}


def describe(kind: str) -> str:
    """A kind of value as a reader says it: ``"ipv4"`` → ``"IPv4 addresses"``."""
    return _DESCRIPTIONS.get(kind, kind)


def percent(part: int, whole: int) -> str:
    """``part`` of ``whole`` as a percentage that never rounds a share to all or none."""
    if whole <= 0 or part <= 0:
        return "0%"
    if part >= whole:
        return "100%"
    share = 100 * part / whole
    return f"{min(99, max(1, round(share)))}%"


class Severity(enum.IntEnum):
    """Mirrors ``FlagSeverity`` in the protos."""

    INFO = 1
    WARNING = 2
    ERROR = 3


@dataclass(frozen=True)
class ColumnCounts:
    """What SQL counted for one column."""

    position: int
    name: str
    empty: int
    distinct: int
    padded: int
    """Non-empty values with surrounding whitespace."""
    matches: dict[ValueKind, int]
    samples: list[str]
    duplicate_values: int
    duplicate_rows: int
    duplicate_examples: list[str]


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    position: int
    null_fraction: float
    distinct_count: int
    inferred_type: str
    """A ValueKind value, or "text" / "empty"."""
    patterns: list[tuple[str, float]]
    sample_values: list[str]


@dataclass(frozen=True)
class DuplicateKey:
    column: str
    duplicate_value_count: int
    affected_row_count: int
    examples: list[str]


@dataclass(frozen=True)
class DataFlag:
    severity: Severity
    code: str
    column: str
    message: str


@dataclass(frozen=True)
class DataProfile:
    import_id: str
    master_flow_id: str
    row_count: int
    columns: list[ColumnProfile]
    duplicate_keys: list[DuplicateKey] = field(default_factory=list)
    flags: list[DataFlag] = field(default_factory=list)
    create_time: datetime | None = None


def _infer(c: ColumnCounts, filled: int) -> tuple[str, list[tuple[str, float]]]:
    if filled == 0:
        return "empty", []
    fractions = {k: n / filled for k, n in c.matches.items()}
    reported = sorted(
        ((k.value, f) for k, f in fractions.items() if f >= REPORTED), key=lambda kf: -kf[1]
    )
    for kind in _PRECEDENCE:
        if fractions.get(kind, 0.0) < DOMINANT:
            continue
        # Single words ("Production", "EMEA") look like host names; real host names are
        # (nearly) unique per row.
        if kind == ValueKind.HOSTNAME and c.distinct < 0.9 * filled:
            continue
        return kind.value, reported
    return "text", reported


def _is_key(c: ColumnCounts, kind: str, filled: int) -> bool:
    if filled == 0 or c.distinct < 0.5 * filled:
        return False
    return kind in {k.value for k in _IDENTIFYING} or bool(_KEY_WORDS.search(c.name.lower()))


def _text_flag(c: ColumnCounts, kind: str, filled: int) -> tuple[str, str] | None:
    """(code, message) when half or more of a text column is one recognised kind.

    Counts are of the non-empty values. Words that look like host names but repeat (the
    only kind that can match nearly every value and still not be the type) are said to be
    that, never "mixed".
    """
    if kind != "text" or filled == 0 or not c.matches:
        return None
    top, matched = max(c.matches.items(), key=lambda km: (km[1], km[0].value))
    if matched < 0.5 * filled:
        return None
    what = describe(top.value)
    if top == ValueKind.HOSTNAME and matched >= DOMINANT * filled:
        return (
            "REPEATED_WORDS",
            f"{percent(matched, filled)} of the {filled} non-empty values look like {what},"
            f" but there are only {c.distinct} distinct values among them; host names rarely"
            " repeat, so the column is typed as text",
        )
    rest = filled - matched
    return (
        "MIXED_VALUES",
        f"{matched} of the {filled} non-empty values ({percent(matched, filled)}) are {what};"
        f" the other {rest} ({percent(rest, filled)}) are not",
    )


def build_profile(
    *,
    import_id: str,
    master_flow_id: str,
    row_count: int,
    quarantined_count: int,
    counts: list[ColumnCounts],
) -> DataProfile:
    columns: list[ColumnProfile] = []
    duplicates: list[DuplicateKey] = []
    flags: list[DataFlag] = []
    if quarantined_count:
        flags.append(
            DataFlag(
                Severity.WARNING,
                "QUARANTINED_ROWS",
                "",
                f"{quarantined_count} row(s) of the upload were quarantined and are not in the"
                " profile; see GetImport for the reasons",
            )
        )
    for c in counts:
        filled = row_count - c.empty
        kind, reported = _infer(c, filled)
        columns.append(
            ColumnProfile(
                name=c.name,
                position=c.position,
                null_fraction=c.empty / row_count if row_count else 0.0,
                distinct_count=c.distinct,
                inferred_type=kind,
                patterns=reported,
                sample_values=c.samples,
            )
        )
        if filled == 0:
            flags.append(DataFlag(Severity.INFO, "EMPTY_COLUMN", c.name, "every value is empty"))
            continue
        if c.empty >= 0.5 * row_count:
            flags.append(
                DataFlag(
                    Severity.WARNING,
                    "MOSTLY_EMPTY_COLUMN",
                    c.name,
                    f"{c.empty} of {row_count} rows ({percent(c.empty, row_count)}) have no value",
                )
            )
        text_flag = _text_flag(c, kind, filled)
        if text_flag:
            flags.append(DataFlag(Severity.INFO, text_flag[0], c.name, text_flag[1]))
        if c.padded:
            flags.append(
                DataFlag(
                    Severity.INFO,
                    "SURROUNDING_WHITESPACE",
                    c.name,
                    f"{c.padded} value(s) have leading or trailing spaces",
                )
            )
        if c.duplicate_values and _is_key(c, kind, filled):
            duplicates.append(
                DuplicateKey(c.name, c.duplicate_values, c.duplicate_rows, c.duplicate_examples)
            )
            flags.append(
                DataFlag(
                    Severity.WARNING,
                    "DUPLICATE_KEYS",
                    c.name,
                    f"{c.duplicate_values} value(s) repeat across {c.duplicate_rows} rows in a"
                    " column that should identify a row",
                )
            )
    flags.sort(key=lambda f: -f.severity)
    return DataProfile(import_id, master_flow_id, row_count, columns, duplicates, flags)
