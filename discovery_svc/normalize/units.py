"""Sizes, counts, the unit of a column, and plausibility.

* Sizes are binary: 1 GB = 1024 MB and 1 TB = 1024 GB, and ``GiB`` is read as ``GB``. CMDB and
  hypervisor exports label binary quantities ``GB`` almost universally (a "16 GB" VM has
  16 GiB of RAM), so decimal units would shift every value by 2.4 % to 7 %.
* A comma in a size is a thousands separator when every comma is followed by exactly three
  digits (``1,024``), and a decimal comma when there is a single comma followed by any other
  number of digits (``1,5``).
* A column's unit comes from its header, bracketed or not (``RAM (MB)``, ``RAM MB``,
  ``Mem_GB``, ``MemoryMB``, ``RAM in MB``); a unit in the value (``16 GB``) wins over it.
  When the header names none, the column's values decide (:func:`column_unit`): 32768 is not
  a plausible number of GB of RAM but is a plausible number of MB.
* Every size and count is checked against the attribute's plausible range
  (``vocab/plausibility.json``). An implausible value is a per-row issue and is not stored.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from discovery_svc import vocab
from discovery_svc.normalize.text import CACHE_SIZE, present, quote

_UNITS: Final = vocab.load("units")
GB_PER_UNIT: Final[Mapping[str, float]] = _UNITS["gb_per_unit"]
_HEADER_UNITS: Final[Mapping[str, str]] = {
    spelling: unit for unit, spellings in _UNITS["header"].items() for spelling in spellings
}
_BRACKETED_UNITS: Final[Mapping[str, str]] = {
    **_HEADER_UNITS,
    **{s: unit for unit, spellings in _UNITS["header_in_brackets_only"].items() for s in spellings},
}


@dataclass(frozen=True, slots=True)
class Range:
    """The plausible values of an attribute for one asset, and the units a bare-number column
    may be in when its header names none (most likely first)."""

    low: float
    high: float
    typical_low: float
    typical_high: float
    scales: tuple[str, ...] = ()

    def typical(self, value: float) -> bool:
        """Whether a column whose median is ``value`` is plausible."""
        return self.typical_low <= value <= self.typical_high

    def describe(self, unit: str = "") -> str:
        """The typical range as text, for messages."""
        return f"expected {self.typical_low:g} to {self.typical_high:g}{unit} per asset"


PLAUSIBLE: Final[Mapping[str, Range]] = {
    attribute: Range(
        spec["low"],
        spec["high"],
        spec["typical_low"],
        spec["typical_high"],
        tuple(spec.get("scales", ())),
    )
    for attribute, spec in vocab.load("plausibility").items()
    if not attribute.startswith("_")
}
CPU_CORES_RANGE: Final = (int(PLAUSIBLE["cpu_cores"].low), int(PLAUSIBLE["cpu_cores"].high))

# An exabyte: anything larger in an inventory is a typo, and JSON has no infinity.
_MAX_GB: Final = 1024.0**3

# --------------------------------------------------------------------------- units of a column

_BRACKETED: Final = re.compile(r"[(\[{]\s*([a-z]+)\s*[)\]}]")
_CAMEL: Final = re.compile(r"(?<=[a-z])(?=[A-Z][A-Z]|[A-Z][a-z])")
_WORDS: Final = re.compile(r"[a-z]+")


def header_unit(header: str) -> str | None:
    """The size unit a column header names (``"MB"``, ``"GB"``, ...), or ``None``.

    ``"RAM (MB)"``, ``"RAM MB"``, ``"Mem_GB"``, ``"MemoryMB"``, ``"Memory (GiB)"``,
    ``"Disk TB"``, ``"RAM in MB"``. A single letter counts only in brackets (``"RAM (M)"``).
    """
    lowered = _CAMEL.sub(" ", header).lower()
    for bracketed in _BRACKETED.findall(lowered):
        if bracketed in _BRACKETED_UNITS:
            return _BRACKETED_UNITS[bracketed]
    units = {_HEADER_UNITS[w] for w in _WORDS.findall(lowered) if w in _HEADER_UNITS}
    return units.pop() if len(units) == 1 else None


@dataclass(frozen=True, slots=True)
class ColumnUnit:
    """The unit of a size column's bare numbers, and why; ``problem`` when its values are not
    plausible in any unit the header allows (to be shown before the mapping is approved)."""

    unit: str
    reason: str
    problem: str | None = None


def _bare_numbers(samples: Iterable[str]) -> list[float]:
    numbers = []
    for raw in samples:
        value, problem = _size_gb(raw, 1.0)
        m = _SIZE.fullmatch(raw.strip().lower())
        if problem is None and value is not None and m is not None and not m.group(3):
            numbers.append(value)
    return numbers


def column_unit(attribute: str, header: str, samples: Iterable[str]) -> ColumnUnit:
    """Decide the unit of a size column's bare numbers from its header and its values together.

    The header's unit is taken when it names one; the values are checked against it all the
    same, and a column whose typical (median) value is implausible in that unit gets a
    ``problem``. Without a unit in the header the first of the attribute's scales in which the
    median is plausible is taken (``"GB"`` before ``"MB"``).
    """
    plausible = PLAUSIBLE[attribute]
    numbers = _bare_numbers(samples)
    median = statistics.median(numbers) if numbers else None
    named = header_unit(header)
    if named is not None:
        if median is None or plausible.typical(median * GB_PER_UNIT[named.lower()]):
            return ColumnUnit(named, f"the header {quote(header)} names {named}")
        return ColumnUnit(
            named,
            f"the header {quote(header)} names {named}",
            f"{attribute}: the typical value {median:g} {named} in column {quote(header)} is"
            f" implausible ({plausible.describe(' GB')})",
        )
    if median is None:
        return ColumnUnit("GB", "no unit in the header or the values: GB assumed")
    for scale in plausible.scales:
        if plausible.typical(median * GB_PER_UNIT[scale.lower()]):
            return ColumnUnit(
                scale,
                f"no unit in the header; the typical value {median:g} is plausible as {scale}",
            )
    return ColumnUnit(
        "GB",
        "no unit in the header or the values: GB assumed",
        f"{attribute}: the typical value {median:g} in column {quote(header)} is implausible in"
        f" any of {', '.join(plausible.scales)}",
    )


# ----------------------------------------------------------------------------------- sizes

_AFTER_VALUE: Final = "|".join(map(re.escape, _UNITS["after_value"]))
_SIZE: Final = re.compile(
    rf"([+-]?)\s*([0-9][0-9.,]*|\.[0-9]+)\s*([a-z]*)(?:\s+(?:{_AFTER_VALUE}))?", re.ASCII
)
_THOUSANDS_COMMA: Final = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?")
_THOUSANDS_DOT: Final = re.compile(r"[0-9]{1,3}(?:\.[0-9]{3})+(?:,[0-9]+)?")


def _size_number(text: str) -> float | None:
    """Parse a number that may use a decimal comma or thousands separators; None if ambiguous."""
    commas, dots = text.count(","), text.count(".")
    if commas and dots:
        # Whichever separator comes last is the decimal one; the other must group by three.
        if text.rfind(".") > text.rfind(","):
            return float(text.replace(",", "")) if _THOUSANDS_COMMA.fullmatch(text) else None
        if not _THOUSANDS_DOT.fullmatch(text):
            return None
        return float(text.replace(".", "").replace(",", "."))
    if commas:
        if _THOUSANDS_COMMA.fullmatch(text):
            return float(text.replace(",", ""))
        if commas == 1 and not text.endswith(","):
            return float(text.replace(",", "."))
        return None
    if dots > 1:
        return float(text.replace(".", "")) if _THOUSANDS_DOT.fullmatch(text) else None
    if text.endswith("."):
        return None
    return float(text)


def unit_factor(unit: str) -> float:
    """GB per ``unit``; ``ValueError`` for an unknown unit (a programming error)."""
    try:
        return GB_PER_UNIT[unit.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown size unit {unit!r}") from None


@lru_cache(maxsize=CACHE_SIZE)
def _size_gb(raw: str, default_factor: float) -> tuple[float | None, str | None]:
    stripped = present(raw)
    if stripped is None:
        return None, None
    m = _SIZE.fullmatch(stripped.lower())
    if m is None:
        return None, f"not a size {quote(stripped)}"
    sign, number_text, unit = m.groups()
    if unit:
        factor = GB_PER_UNIT.get(unit)
        if factor is None:
            return None, f"unknown size unit {quote(stripped)}"
    else:
        factor = default_factor
    number = _size_number(number_text)
    if number is None:
        return None, f"ambiguous number in size {quote(stripped)}"
    if sign == "-" and number != 0:
        return None, f"negative size {quote(stripped)}"
    gb = number * factor
    if not math.isfinite(gb) or gb > _MAX_GB:
        return None, f"size out of range {quote(stripped)}"
    return round(gb, 3), None


def normalize_size_gb(raw: str, *, default_unit: str = "GB") -> tuple[float | None, str | None]:
    """Convert a size such as ``"16384 MB"``, ``"1,5 TB"`` or ``"512 MiB"`` to GB (binary).

    A bare number is in ``default_unit``. The result is rounded to three decimals.
    Raises ``ValueError`` if ``default_unit`` itself is unknown (a programming error).
    """
    return _size_gb(raw, unit_factor(default_unit))


@lru_cache(maxsize=CACHE_SIZE)
def plausible_size_gb(
    raw: str, default_factor: float, low: float, high: float, unit_name: str
) -> tuple[float | None, str | None]:
    """:func:`normalize_size_gb` plus the plausibility check: an implausible size is an issue."""
    gb, problem = _size_gb(raw, default_factor)
    if gb is None or low <= gb <= high:
        return gb, problem
    shown = f"{gb:g} GB" if unit_name == "GB" else f"{gb:g} GB (read as {unit_name})"
    return None, f"implausible {quote(raw.strip())} = {shown}: expected {low:g} to {high:g} GB"


def normalize_memory_gb(raw: str, *, default_unit: str = "GB") -> tuple[float | None, str | None]:
    """A memory size in GB, or an issue when it is outside the plausible range."""
    r = PLAUSIBLE["memory_gb"]
    return plausible_size_gb(raw, unit_factor(default_unit), r.low, r.high, default_unit.upper())


# ----------------------------------------------------------------------------------- counts

_INT: Final = re.compile(
    r"([+-]?[0-9]{1,3}(?:,[0-9]{3})+|[+-]?[0-9]+)(?:\.0+)?"
    r"(?:\s*(?:cores?|vcores?|cpus?|vcpus?|processors?))?",
    re.ASCII,
)


@lru_cache(maxsize=CACHE_SIZE)
def whole(raw: str, low: int, high: int) -> tuple[int | None, str | None]:
    stripped = present(raw)
    if stripped is None:
        return None, None
    m = _INT.fullmatch(stripped.lower())
    if m is None:
        return None, f"not a whole number {quote(stripped)}"
    number = int(m.group(1).replace(",", ""))
    if not low <= number <= high:
        return None, f"out of range {low}..{high} {quote(stripped)}"
    return number, None


def normalize_int(raw: str, *, low: int, high: int) -> tuple[int | None, str | None]:
    """Parse a whole number such as ``"4"``, ``"4.0"`` or ``"4 vCPU"`` within ``low..high``.

    Expressions such as ``"2x4"`` are issues: sockets times cores, or cores times threads?
    """
    return whole(raw, low, high)


def implausibility(attribute: str, header: str, samples: Iterable[str]) -> str | None:
    """For the approval gate: why a column mapped to ``attribute`` holds implausible values
    (its typical value, in any unit its header allows), or ``None`` when it looks fine or the
    attribute has no plausible range."""
    if attribute in ("memory_gb", "storage_gb"):
        return column_unit(attribute, header, samples).problem
    if attribute != "cpu_cores":
        return None
    values = [v for v in (whole(s, 0, 2**31)[0] for s in samples) if v is not None]
    median = statistics.median(values) if values else None
    r = PLAUSIBLE[attribute]
    if median is None or r.typical(median):
        return None
    return (
        f"{attribute}: the typical value {median:g} in column {quote(header)} is implausible"
        f" ({r.describe()})"
    )
