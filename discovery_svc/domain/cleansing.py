"""Row cleansing for the DATA_CLEANSING phase: apply an approved mapping to raw CSV rows.

The normalisers, one module per kind of value, are in :mod:`discovery_svc.normalize`; the
vocabularies they apply are data files in :mod:`discovery_svc.vocab`. This module builds, from
the approved mapping, the steps for each column and runs them over every row. It also decides
each row's asset type, once: from the type column when it names a known type (``asset_type``),
else by :func:`~discovery_svc.normalize.asset_types.guess_asset_type` (``asset_type_guess``,
with its reason in ``asset_type_reason``). The SQL that builds assets takes the type as
decided here: a given type before a guess, then by the precedence of ``ASSET_TYPES``.

Sizes and counts are checked against plausible ranges (``vocab/plausibility.json``): a value
outside is a per-row issue and is not stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import orjson

from discovery_svc.domain import identity, mapping_set
from discovery_svc.normalize.asset_types import (
    ASSET_TYPES,
    asset_type,
    guess_asset_type,
    normalize_asset_type,
)
from discovery_svc.normalize.lookups import (
    criticality,
    environment,
    normalize_criticality,
    normalize_environment,
)
from discovery_svc.normalize.network import HostInfo, hostname, ip, normalize_hostname, normalize_ip
from discovery_svc.normalize.os import OsInfo, merge_version, normalize_os, operating_system
from discovery_svc.normalize.text import (
    Result,
    depends_on,
    normalize_depends_on,
    normalize_text,
    present,
    quote,
    text,
)
from discovery_svc.normalize.units import (
    CPU_CORES_RANGE,
    GB_PER_UNIT,
    PLAUSIBLE,
    normalize_int,
    normalize_size_gb,
    plausible_size_gb,
    unit_factor,
    whole,
)

__all__ = [
    "ASSET_TYPES",
    "CPU_CORES_RANGE",
    "TARGET_ATTRIBUTES",
    "CleansedBatch",
    "CleansedRow",
    "HostInfo",
    "Issue",
    "OsInfo",
    "RowCleanser",
    "normalize_asset_type",
    "normalize_criticality",
    "normalize_depends_on",
    "normalize_environment",
    "normalize_hostname",
    "normalize_int",
    "normalize_ip",
    "normalize_os",
    "normalize_size_gb",
    "normalize_text",
]

TARGET_ATTRIBUTES: Final = frozenset(mapping_set.TARGET_ATTRIBUTES)

CUSTOM_PREFIX: Final = "custom:"
MAX_ISSUE_VALUE: Final = 200
# Identifiers that key an asset (host names are bounded by DNS already). A longer value is
# kept in full and the asset is made, but the row gets an issue: it is probably a description
# or notes column mapped by mistake.
IDENTIFIER_ATTRIBUTES: Final = frozenset(
    {"asset_name", "serial_number", "asset_tag", "application_name"}
)
MAX_IDENTIFIER: Final = 255


def asset_tag(raw: str) -> Result:
    """A trimmed asset tag; a placeholder (``N/A``, ``0``, ``unknown tag``...) is no tag.

    Tags identify assets (``IDENTITY_KEY_NAME_AND_TAG``, and a row with nothing else), so the
    names that never identify one (``vocab/placeholders.json``) are missing values here too.
    """
    value, _ = text(raw)
    if value is None or identity.is_placeholder(value):
        return None, None
    return value, None


@dataclass(frozen=True, slots=True)
class Issue:
    """A value that was present but could not be cleansed."""

    attribute: str
    value: str
    problem: str


def _size_in_row_unit(row: Sequence[str], raw: str, extra: tuple[object, ...]) -> Result:
    """A size whose bare number is in the row's unit column when there is one (Device42's
    ``ram`` with ``ram_size_type``), else in the column's unit."""
    factor, low, high, unit_name, unit_index = extra
    assert isinstance(unit_index, int) and isinstance(factor, float)
    if 0 <= unit_index < len(row):
        unit = present(row[unit_index])
        if unit is not None:
            row_factor = GB_PER_UNIT.get(unit.lower())
            if row_factor is None:
                return None, f"unknown size unit {quote(unit)} in the unit column"
            factor, unit_name = row_factor, unit.upper()
    return plausible_size_gb(raw, factor, low, high, unit_name)


def _cores_times_sockets(
    row: Sequence[str], raw: str, extra: tuple[object, ...], issues: list[Issue]
) -> Result:
    """Cores, or sockets times the row's cores per socket when a column gives them."""
    low, high, per_index = extra
    assert isinstance(low, int) and isinstance(high, int) and isinstance(per_index, int)
    if not 0 <= per_index < len(row):
        return whole(raw, low, high)
    count, problem = whole(raw, low, high)
    per, per_problem = whole(row[per_index], low, high)
    if per_problem is not None:
        issues.append(Issue("cores_per_socket", row[per_index][:MAX_ISSUE_VALUE], per_problem))
    if count is not None and per is None and per_problem is None:
        # Sockets are a lower bound on cores: kept, but said to be one.
        issues.append(
            Issue(
                "cores_per_socket",
                "",
                f"no cores per socket on this row: cpu_cores is its {count} socket(s), one core"
                " each (a lower bound)",
            )
        )
    if count is None or per is None:
        return count, problem
    if not low <= count * per <= high:
        return None, f"{count} sockets x {per} cores is out of range {low}..{high}"
    return count * per, None


# ------------------------------------------------------------------------------------ the row


@dataclass(frozen=True)
class CleansedRow:
    """The cleansed values of one row (attribute -> value) and the issues found in it.

    ``operating_system`` expands to ``operating_system`` (display string), ``os_family`` and
    ``os_version``; ``hostname`` to ``hostname``, ``domain`` and ``fqdn``. Custom attributes
    are stored under ``values["custom"]`` as a dict.
    """

    values: dict[str, object]
    issues: list[Issue]


@dataclass(frozen=True)
class CleansedBatch:
    """A batch of cleansed rows as the cleansing phase writes them, in plain picklable values
    (built in a worker process, written by the phase's connection).

    ``rows`` are (row number, values as compact JSON); ``issues`` are (row number, attribute,
    value, problem), in row order.
    """

    rows: list[tuple[int, str]]
    issues: list[tuple[int, str, str, str]]


def to_json(values: Mapping[str, object]) -> str:
    """A row's cleansed values as stored in ``cleansed_records.values`` (jsonb: text that
    parses to the same value whatever its spacing or escapes). orjson, not json: at 1,000,000
    rows the standard encoder was 18% of the discovery service's busy samples (py-spy)."""
    return orjson.dumps(values).decode()


def with_copies(values: Sequence[str], width: int, copies: Sequence[int]) -> list[str]:
    """The row padded to ``width``, then the values of the ``copies`` columns again (a column
    feeding several attributes is read once per extra attribute)."""
    row = [*values[:width], *([""] * (width - len(values)))]
    return row + [row[i] for i in copies]


# Step kinds, so that the per-row loop branches on a small int instead of calling closures.
_PLAIN, _HOST, _OS, _DEPS, _CUSTOM, _OS_VERSION_COLUMN, _IDENTIFIER, _DOMAIN = range(8)
_SIZE, _CORES = range(8, 10)
# Name columns whose placeholder ("unknown", "N/A") is reported: the row is keyed otherwise.
_NAMES: Final = frozenset({"asset_name", "hostname"})
PLACEHOLDER_NAME: Final = "placeholder_name"
"""The placeholder a name column held (``values[PLACEHOLDER_NAME]``), for the inventory."""

_PLAIN_NORMALISERS: Final[Mapping[str, Callable[[str], Result]]] = {
    "ip_address": ip,
    "environment": environment,
    "business_criticality": criticality,
    "asset_type": asset_type,
}


class RowCleanser:
    """Built once per flow from the approved mapping; cleanse() is called per row."""

    def __init__(
        self,
        mapping: Mapping[int, str],
        *,
        memory_unit_hint: str | None = None,
        storage_unit_hint: str | None = None,
        export_type: tuple[str, str] | None = None,
    ) -> None:
        """Prepare the per-column steps.

        ``mapping`` maps 0-based column indexes to target attributes or ``"custom:<name>"``.
        The unit hints (from headers such as ``"RAM (MB)"``) are the unit of bare numbers.
        ``export_type`` (type, reason) types a row without a type before any guess: the
        export says what every row is (a vCenter VM list).
        Raises ``ValueError`` for unknown attributes, an attribute mapped twice, negative column
        indexes or unknown units: the mapping was approved, so these are programming errors.
        """
        memory_unit = (memory_unit_hint or "GB").upper()
        storage_unit = (storage_unit_hint or "GB").upper()
        memory, storage = PLAUSIBLE["memory_gb"], PLAUSIBLE["storage_gb"]
        memory_size = (unit_factor(memory_unit), memory.low, memory.high, memory_unit)
        storage_size = (unit_factor(storage_unit), storage.low, storage.high, storage_unit)
        seen: set[str] = set()
        # A companion column qualifies another attribute row by row (its unit, a multiplier):
        # read in that attribute's step, never stored on its own.
        companion = {
            mapping_set.COMPANIONS[attribute]: index
            for index, attribute in mapping.items()
            if attribute in mapping_set.COMPANIONS
        }
        steps: list[tuple[int, int, str, Callable[..., Result], tuple[object, ...]]] = []
        for index, attribute in sorted(mapping.items()):
            if index < 0:
                raise ValueError(f"negative column index {index} for {attribute!r}")
            if attribute in seen:
                raise ValueError(f"attribute {attribute!r} is mapped from several columns")
            seen.add(attribute)
            if attribute in mapping_set.COMPANIONS:
                continue
            if attribute.startswith(CUSTOM_PREFIX):
                name = attribute[len(CUSTOM_PREFIX) :]
                if not name:
                    raise ValueError(f"custom attribute without a name: {attribute!r}")
                steps.append((_CUSTOM, index, name, text, ()))
            elif attribute not in TARGET_ATTRIBUTES:
                raise ValueError(f"unknown target attribute {attribute!r}")
            elif attribute == "hostname":
                steps.append((_HOST, index, attribute, hostname, ()))
            elif attribute == "operating_system":
                steps.append((_OS, index, attribute, operating_system, ()))
            elif attribute == "os_version":
                steps.append((_OS_VERSION_COLUMN, index, attribute, text, ()))
            elif attribute == "depends_on":
                steps.append((_DEPS, index, attribute, depends_on, ()))
            elif attribute == "cpu_cores":
                per = companion.get(attribute, -1)
                steps.append((_CORES, index, attribute, whole, (*CPU_CORES_RANGE, per)))
            elif attribute == "memory_gb":
                unit = companion.get(attribute, -1)
                steps.append((_SIZE, index, attribute, plausible_size_gb, (*memory_size, unit)))
            elif attribute == "storage_gb":
                unit = companion.get(attribute, -1)
                steps.append((_SIZE, index, attribute, plausible_size_gb, (*storage_size, unit)))
            elif attribute == "domain":
                steps.append((_DOMAIN, index, attribute, text, ()))
            elif attribute == "asset_tag":
                steps.append((_IDENTIFIER, index, attribute, asset_tag, ()))
            elif attribute in IDENTIFIER_ATTRIBUTES:
                steps.append((_IDENTIFIER, index, attribute, text, ()))
            else:
                plain = _PLAIN_NORMALISERS.get(attribute, text)
                steps.append((_PLAIN, index, attribute, plain, ()))
        self._steps = tuple(steps)
        self._export_type = export_type

    def cleanse_batch(
        self,
        rows: Iterable[tuple[int, Sequence[str]]],
        *,
        width: int = 0,
        copies: Sequence[int] = (),
    ) -> CleansedBatch:
        """Cleanse (row number, raw values) pairs, each first extended by :func:`with_copies`
        when there are ``copies``: the same bytes as :meth:`cleanse` row by row, in a form a
        process pool sends back cheaply. The cleanser itself pickles (its normalisers are
        module-level functions), so a pool's initializer can receive it once."""
        out: list[tuple[int, str]] = []
        issues: list[tuple[int, str, str, str]] = []
        cleanse, dumps = self.cleanse, to_json
        for row_number, values in rows:
            if copies:
                values = with_copies(values, width, copies)
            cleansed = cleanse(values)
            out.append((row_number, dumps(cleansed.values)))
            for i in cleansed.issues:
                issues.append((row_number, i.attribute, i.value, i.problem))
        return CleansedBatch(out, issues)

    def cleanse(self, row: Sequence[str]) -> CleansedRow:
        """Cleanse one row; a column missing from a short row counts as an empty value."""
        values: dict[str, object] = {}
        issues: list[Issue] = []
        width = len(row)
        os_info: OsInfo | None = None
        os_version: str | None = None
        custom: dict[str, object] | None = None
        domain: str | None = None
        for kind, index, attribute, normalise, extra in self._steps:
            if index >= width:
                continue
            raw = row[index]
            if kind == _SIZE:
                value, problem = _size_in_row_unit(row, raw, extra)
            elif kind == _CORES:
                value, problem = _cores_times_sockets(row, raw, extra, issues)
            else:
                value, problem = normalise(raw, *extra)
            if problem is not None:
                issues.append(Issue(attribute, raw[:MAX_ISSUE_VALUE], problem))
                continue
            if value is None:
                if attribute in _NAMES and raw.strip() and identity.is_placeholder(raw):
                    # Kept aside for ASSET_INVENTORY, which reports it with the row's identity
                    # (once per cell, however many attributes the column feeds).
                    values.setdefault(PLACEHOLDER_NAME, raw.strip()[:MAX_ISSUE_VALUE])
                continue
            if kind in (_PLAIN, _SIZE, _CORES):
                values[attribute] = value
            elif kind == _DOMAIN:
                assert isinstance(value, str)
                domain = value.lower().strip(".")
                if identity.is_workgroup(domain):
                    domain = None
            elif kind == _IDENTIFIER:
                values[attribute] = value
                assert isinstance(value, str)
                if len(value) > MAX_IDENTIFIER:
                    issues.append(
                        Issue(
                            attribute,
                            raw[:MAX_ISSUE_VALUE],
                            f"{len(value)} characters long (more than {MAX_IDENTIFIER}): kept in"
                            " full, but an identifier this long is probably another column"
                            " mapped by mistake",
                        )
                    )
            elif kind == _HOST:
                assert isinstance(value, HostInfo)
                values["hostname"] = value.hostname
                values["domain"] = value.domain
                values["fqdn"] = value.fqdn
            elif kind == _OS:
                assert isinstance(value, OsInfo)
                os_info = value
            elif kind == _OS_VERSION_COLUMN:
                assert isinstance(value, str)
                os_version = value
            elif kind == _DEPS:
                assert isinstance(value, tuple)
                values[attribute] = list(value)  # a fresh list: the cached tuple is shared
            else:
                if custom is None:
                    custom = {}
                    values["custom"] = custom
                custom[attribute] = value
        if domain and not values.get("domain"):
            # A domain column places a short host name ("LSAPP01" in "CORP"); a name that is
            # already an FQDN keeps its own domain.
            values["domain"] = domain
            if "hostname" in values and "." in domain:
                values["fqdn"] = f"{values['hostname']}.{domain}"
        if os_info is not None:
            # A version column is more precise than the OS string, but keeps its service pack.
            version = os_info.version
            if os_version is not None:
                version = merge_version(version, os_version)
            values["operating_system"] = f"{os_info.name} {version}" if version else os_info.name
            values["os_family"] = os_info.family
            values["os_version"] = version
        elif os_version is not None:
            values["os_version"] = os_version
        if "asset_type" not in values:
            # Kept apart from a given type, which a guess never overrides.
            # A type cell that did not parse says this row is not what the export usually is.
            unparsed = any(i.attribute == "asset_type" for i in issues)
            export = None if unparsed else self._export_type
            values["asset_type_guess"], values["asset_type_reason"] = export or guess_asset_type(
                values
            )
        return CleansedRow(values, issues)
