"""Value cleansing for the DATA_CLEANSING phase: apply an approved mapping to raw CSV rows.

Every normaliser takes the raw cell text and returns ``(value, problem)``:

* ``(value, None)`` when the value was cleansed;
* ``(None, None)`` when the cell is empty, whitespace only or a placeholder such as ``N/A``
  (the value is *missing*, which is not a data-quality issue);
* ``(None, problem)`` when the value is present but cannot be cleansed. Nothing is guessed:
  an ambiguous value is reported rather than turned into a plausible-looking wrong one.

A flow can hold a million rows, and CMDB columns repeat the same few values over and over, so
each normaliser is memoised with ``functools.lru_cache``. The public functions are thin wrappers
around the cached private ones: a decorated function loses its parameter types under mypy, and
:class:`RowCleanser` calls the cached functions directly to skip the extra call. Cached results
are immutable (frozen dataclasses, tuples) because they are shared between rows.

Decisions that are not obvious from the interface:

* Sizes are binary: 1 GB = 1024 MB and 1 TB = 1024 GB, and ``GiB`` is read as ``GB``. CMDB and
  hypervisor exports label binary quantities ``GB`` almost universally (a "16 GB" VM has
  16 GiB of RAM), so decimal units would shift every value by 2.4 % to 7 %.
* A comma in a size is a thousands separator when every comma is followed by exactly three
  digits (``1,024``), and a decimal comma when there is a single comma followed by any other
  number of digits (``1,5``).
* IPv4 octets with leading zeros (``010.001.002.003``) are read as decimal. ``ipaddress``
  rejects them because some C libraries read them as octal, but CMDB exports pad octets so that
  addresses sort as text; nobody writes octal addresses in an inventory.
* Host names may contain ``_``: it is not valid in DNS, but NetBIOS names of Windows servers
  use it commonly and those names do turn up in CMDBs. Any other symbol is an issue.
* An OS string naming several versions (``Oracle Linux 4/5/6 (64-bit)``, a ServiceNow catalogue
  entry) yields the product with an empty version and no issue: the product is certain, and
  picking one of the versions would be a guess.
* ``depends_on`` is split on ``;``, ``,``, ``|`` and line breaks, but not on spaces, because
  dependencies are often application names such as ``Payroll Service``.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from discovery_svc.domain import mapping_set

__all__ = [
    "TARGET_ATTRIBUTES",
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
CPU_CORES_RANGE: Final = (1, 1024)
MAX_ISSUE_VALUE: Final = 200
# Identifiers that key an asset (host names are bounded by DNS already). A longer value is
# kept in full and the asset is made, but the row gets an issue: it is probably a description
# or notes column mapped by mistake.
IDENTIFIER_ATTRIBUTES: Final = frozenset({"asset_name", "serial_number", "application_name"})
MAX_IDENTIFIER: Final = 255
# An exabyte: anything larger in an inventory is a typo, and JSON has no infinity.
_MAX_GB: Final = 1024.0**3

_CACHE_SIZE: Final = 65536
# Problems quote the value; a runaway cell must not turn every message into a megabyte.
_MAX_QUOTED: Final = 80

_PLACEHOLDERS: Final = frozenset(
    {"", "n/a", "na", "#n/a", "-", "--", "null", "none", "unknown", "tbd", "?"}
)


@dataclass(frozen=True, slots=True)
class Issue:
    """A value that was present but could not be cleansed."""

    attribute: str
    value: str
    problem: str


@dataclass(frozen=True, slots=True)
class OsInfo:
    """An operating system: family (``windows``, ``linux``, ...), product name and version."""

    family: str
    name: str
    version: str

    @property
    def display(self) -> str:
        """``name`` and ``version`` as one string, e.g. ``"RHEL 8.6"``."""
        return f"{self.name} {self.version}" if self.version else self.name


@dataclass(frozen=True, slots=True)
class HostInfo:
    """A host name split into short name and domain, all lower-case."""

    hostname: str
    domain: str
    fqdn: str


Result = tuple[object, str | None]


def _present(raw: str) -> str | None:
    """The stripped value, or ``None`` when it is empty or a placeholder."""
    s = raw.strip()
    return None if s.casefold() in _PLACEHOLDERS else s


def _quote(s: str) -> str:
    if len(s) > _MAX_QUOTED:
        s = s[: _MAX_QUOTED - 1] + "\u2026"
    return '"' + s + '"'


def _key(s: str) -> str:
    """Lookup key for synonym tables: case, separators and spacing do not matter."""
    return " ".join(s.casefold().replace("-", " ").replace("_", " ").replace("/", " ").split())


# --------------------------------------------------------------------------- operating system

_WIN: Final = re.compile(r"\bwin(?:dows)?(?![a-z])", re.ASCII)
_WIN_DESKTOP: Final = re.compile(
    r"\bwin(?:dows)?\s*(xp|vista|7|8\.1|8|10|11)(?![0-9.a-z])", re.ASCII
)
# "2k8", "2k12r2", "2019", "2k" (= 2000); only known server releases count as server years.
_WIN_YEAR: Final = re.compile(r"(?<![0-9])(?:2k([0-9]{0,2})|20([0-9]{2}))(?![0-9])(\s*r2)?")
_WIN_SERVER_YEARS: Final = frozenset({2000, 2003, 2008, 2012, 2016, 2019, 2022, 2025})
# Tokens that carry digits but no version information.
_OS_NOISE: Final = re.compile(
    r"\(?\b(?:32|64)[\s-]?bits?\b\)?|\bx86[_-]64\b|\bx64\b|\bx86\b|\bamd64\b|\bi[3-6]86\b"
    r"|\bppc64(?:le)?\b|\bupdate\s*[0-9]+\b|\bu[0-9]+\b|\bbuild\s*[0-9.]+\b|\btl\s*[0-9]+\b",
    re.ASCII,
)
_OS_VERSION: Final = re.compile(
    r"(?<![a-z0-9.])([0-9]+(?:\.[0-9]+)*)(?![0-9])(?:\s*sp\s*([0-9]+)(?![0-9]))?", re.ASCII
)

# Checked in order: specific products before the generic "linux" / "unix".
_OS_PRODUCTS: Final[tuple[tuple[re.Pattern[str], str, str], ...]] = tuple(
    (re.compile(pattern, re.ASCII), family, name)
    for pattern, family, name in (
        (r"\b(?:vmware\s*)?esxi?(?![a-z])|\bvsphere\s+hypervisor\b", "esxi", "ESXi"),
        (
            r"\brhel(?![a-z])|\bred\s*hat(?:\s+enterprise)?(?:\s+linux)?"
            r"(?:\s+(?:server|workstation|es|as|ws)(?![a-z]))?",
            "linux",
            "RHEL",
        ),
        (r"\bcent\s*os(?:\s+linux)?", "linux", "CentOS"),
        (
            r"\boracle\s+(?:enterprise\s+)?linux(?:\s+server)?|\boel(?![a-z])",
            "linux",
            "Oracle Linux",
        ),
        (
            r"\bsle[sd](?![a-z])|\b(?:open\s*)?suse(?:\s+linux)?(?:\s+enterprise)?"
            r"(?:\s+(?:server|desktop))?",
            "linux",
            "SUSE",
        ),
        (r"\bubuntu(?:\s+(?:server|linux))?", "linux", "Ubuntu"),
        (r"\bdebian(?:\s+gnu\s*/\s*linux)?", "linux", "Debian"),
        (r"\bfedora(?:\s+linux)?", "linux", "Fedora"),
        (r"\brocky(?:\s+linux)?", "linux", "Rocky Linux"),
        (r"\balma\s*linux", "linux", "AlmaLinux"),
        (r"\bamazon\s+linux", "linux", "Amazon Linux"),
        (r"\b(?:ibm\s+)?aix(?![a-z])", "unix", "AIX"),
        (r"\b(?:oracle\s+|sun\s+)?solaris|\bsunos(?![a-z])", "unix", "Solaris"),
        (r"\bhp\s*-?\s*ux(?![a-z])", "unix", "HP-UX"),
        (r"\bfreebsd(?![a-z])", "unix", "FreeBSD"),
        (r"\bmac\s*os(?:\s*x)?(?![a-z])|\bos\s*x(?![a-z])", "macos", "macOS"),
        (r"\bz/?os(?![a-z])", "other", "z/OS"),
        (r"\bgnu/linux|\blinux(?![a-z])", "linux", "Linux"),
        (r"\bunix(?![a-z])", "unix", "Unix"),
    )
)


def _windows(s: str, raw: str) -> tuple[OsInfo | None, str | None]:
    desktop = _WIN_DESKTOP.search(s)
    if desktop:
        release = desktop.group(1)
        version = release.upper() if release == "xp" else release.capitalize()
        return OsInfo("windows", "Windows", version), None
    year_match = _WIN_YEAR.search(s)
    if year_match:
        digits = year_match.group(1) if year_match.group(1) is not None else year_match.group(2)
        year = 2000 + int(digits or "0")
        if year in _WIN_SERVER_YEARS:
            version = f"{year} R2" if year_match.group(3) else str(year)
            return OsInfo("windows", "Windows Server", version), None
    if any(c.isdigit() for c in _OS_NOISE.sub(" ", s)):
        # "Windows NT 4.0", "Windows 2077": a version we do not know is still a version.
        return None, f"unrecognised Windows version {_quote(raw)}"
    name = "Windows Server" if "server" in s else "Windows"
    return OsInfo("windows", name, ""), None


@lru_cache(maxsize=_CACHE_SIZE)
def _os(raw: str) -> tuple[OsInfo | None, str | None]:
    stripped = _present(raw)
    if stripped is None:
        return None, None
    s = stripped.lower()
    if _WIN.search(s):
        return _windows(s, stripped)
    for pattern, family, name in _OS_PRODUCTS:
        m = pattern.search(s)
        if m is None:
            continue
        rest = _OS_NOISE.sub(" ", s[: m.start()] + " " + s[m.end() :])
        versions = {
            f"{number} SP{sp}" if sp else number for number, sp in _OS_VERSION.findall(rest)
        }
        # Several versions ("4/5/6") are a catalogue entry, not this host's version.
        version = versions.pop() if len(versions) == 1 else ""
        return OsInfo(family, name, version), None
    return None, f"unrecognised operating system {_quote(stripped)}"


def normalize_os(raw: str) -> tuple[OsInfo | None, str | None]:
    """Recognise an operating system string (``"Win2k12R2"``, ``"RHEL 8.6"``, ``"SLES 15 SP4"``).

    Windows server releases are named ``"Windows Server"`` with the release year (plus ``R2``);
    desktop releases are ``"Windows"`` with ``"7"``, ``"10"``, ... An unknown product is an issue.
    """
    return _os(raw)


# --------------------------------------------------------------------------------------- sizes

_GB_PER_UNIT: Final[Mapping[str, float]] = {
    **dict.fromkeys(("b", "byte", "bytes"), 1 / 1024**3),
    **dict.fromkeys(("k", "kb", "kib", "kbyte", "kbytes", "kilobytes"), 1 / 1024**2),
    **dict.fromkeys(("m", "mb", "mib", "mbyte", "mbytes", "megabytes"), 1 / 1024),
    **dict.fromkeys(("g", "gb", "gib", "gbyte", "gbytes", "gigabytes"), 1.0),
    **dict.fromkeys(("t", "tb", "tib", "tbyte", "tbytes", "terabytes"), 1024.0),
    **dict.fromkeys(("p", "pb", "pib", "pbyte", "pbytes", "petabytes"), 1024.0**2),
}
_SIZE: Final = re.compile(r"([+-]?)\s*([0-9][0-9.,]*|\.[0-9]+)\s*([a-z]*)", re.ASCII)
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


def _unit_factor(unit: str) -> float:
    try:
        return _GB_PER_UNIT[unit.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown size unit {unit!r}") from None


@lru_cache(maxsize=_CACHE_SIZE)
def _size_gb(raw: str, default_factor: float) -> tuple[float | None, str | None]:
    stripped = _present(raw)
    if stripped is None:
        return None, None
    m = _SIZE.fullmatch(stripped.lower())
    if m is None:
        return None, f"not a size {_quote(stripped)}"
    sign, number_text, unit = m.groups()
    if unit:
        factor = _GB_PER_UNIT.get(unit)
        if factor is None:
            return None, f"unknown size unit {_quote(stripped)}"
    else:
        factor = default_factor
    number = _size_number(number_text)
    if number is None:
        return None, f"ambiguous number in size {_quote(stripped)}"
    if sign == "-" and number != 0:
        return None, f"negative size {_quote(stripped)}"
    gb = number * factor
    if not math.isfinite(gb) or gb > _MAX_GB:
        return None, f"size out of range {_quote(stripped)}"
    return round(gb, 3), None


def normalize_size_gb(raw: str, *, default_unit: str = "GB") -> tuple[float | None, str | None]:
    """Convert a size such as ``"16384 MB"``, ``"1,5 TB"`` or ``"512 MiB"`` to GB (binary).

    A bare number is in ``default_unit``. The result is rounded to three decimals.
    Raises ``ValueError`` if ``default_unit`` itself is unknown (a programming error).
    """
    return _size_gb(raw, _unit_factor(default_unit))


# ------------------------------------------------------------------------------------------ IP

_SEVERAL: Final = re.compile(r"[\s,;|]+")
_IPV4_PADDED: Final = re.compile(r"[0-9]+(?:\.[0-9]+){3}", re.ASCII)


def _unpad_ipv4(address: str) -> str:
    if _IPV4_PADDED.fullmatch(address):
        return ".".join(str(int(octet)) for octet in address.split("."))
    return address


@lru_cache(maxsize=_CACHE_SIZE)
def _ip(raw: str) -> tuple[str | None, str | None]:
    stripped = _present(raw)
    if stripped is None:
        return None, None
    if len([part for part in _SEVERAL.split(stripped) if part]) > 1:
        return None, f"several addresses in one value {_quote(stripped)}"
    address, slash, prefix = stripped.partition("/")
    text = _unpad_ipv4(address) + slash + prefix
    try:
        # ip_interface accepts "10.0.0.1/24" and keeps the host address, not the network.
        parsed = ipaddress.ip_interface(text).ip
    except ValueError:
        return None, f"invalid IP address {_quote(stripped)}"
    return str(parsed), None


def normalize_ip(raw: str) -> tuple[str | None, str | None]:
    """Validate an IPv4/IPv6 address and return its canonical text.

    Interface notation (``"10.0.0.1/24"``) keeps the address. Several addresses in one value are
    an issue: which one is the host's primary address cannot be known.
    """
    return _ip(raw)


# ------------------------------------------------------------------------------------ hostname

_LABEL: Final = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?", re.ASCII)


def _looks_like_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(_unpad_ipv4(s.partition("/")[0]))
    except ValueError:
        return False
    return True


@lru_cache(maxsize=_CACHE_SIZE)
def _hostname(raw: str) -> tuple[HostInfo | None, str | None]:
    stripped = _present(raw)
    if stripped is None:
        return None, None
    name = stripped.lower().removesuffix(".")
    if _looks_like_ip(name):
        return None, f"looks like an IP address, not a host name {_quote(stripped)}"
    if any(c.isspace() for c in name):
        return None, f"host name contains spaces {_quote(stripped)}"
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return None, f"invalid host name {_quote(stripped)}"
    domain = ".".join(labels[1:])
    return HostInfo(labels[0], domain, name), None


def normalize_hostname(raw: str) -> tuple[HostInfo | None, str | None]:
    """Split a host name or FQDN into lower-case short name, domain and FQDN.

    Letters, digits, ``-`` and ``_`` are allowed in each label; spaces, other symbols and IP
    addresses are issues.
    """
    return _hostname(raw)


# ----------------------------------------------------------------------------- synonym tables


def _table(groups: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    table: dict[str, str] = {}
    for canonical, synonyms in groups.items():
        for synonym in (canonical, *synonyms):
            table[_key(synonym)] = canonical
    return table


_ENVIRONMENTS: Final = _table(
    {
        "production": ("prod", "prd", "live", "p", "productive"),
        "staging": ("stage", "stg", "preprod", "pre-prod", "pre-production", "preproduction"),
        "test": ("tst", "testing"),
        "development": ("dev", "devl", "develop"),
        "dr": ("disaster recovery",),
        "qa": ("quality assurance",),
        "uat": ("user acceptance", "user acceptance test", "user acceptance testing"),
        "training": ("train", "trn", "trng"),
        "sandbox": ("sbx", "sand box"),
    }
)

_CRITICALITIES: Final = _table(
    {
        "critical": (
            "mission critical",
            "business critical",
            "tier 0",
            "tier0",
            "tier 1",
            "tier1",
            "1",
            "p1",
            "1 - most critical",
        ),
        "high": ("tier 2", "tier2", "2", "p2", "2 - somewhat critical"),
        "medium": ("moderate", "med", "tier 3", "tier3", "3", "p3", "3 - less critical"),
        "low": (
            "tier 4",
            "tier4",
            "4",
            "p4",
            "non-critical",
            "noncritical",
            "not critical",
            "4 - not critical",
        ),
    }
)

_ASSET_TYPES: Final = _table(
    {
        "server": (
            "servers",
            "host",
            "windows server",
            "linux server",
            "unix server",
            "aix server",
            "physical server",
            "virtual server",
            "vm",
            "virtual machine",
            "esx host",
            "esxi host",
            "hypervisor",
            "cmdb_ci_server",
            "cmdb_ci_win_server",
            "cmdb_ci_linux_server",
            "cmdb_ci_unix_server",
            "cmdb_ci_aix_server",
            "cmdb_ci_solaris_server",
            "cmdb_ci_esx_server",
            "cmdb_ci_vm_instance",
            "cmdb_ci_vmware_instance",
        ),
        "database": (
            "databases",
            "db",
            "sql",
            "database instance",
            "db instance",
            "cmdb_ci_db_instance",
            "cmdb_ci_database",
            "cmdb_ci_db_mssql_instance",
            "cmdb_ci_db_ora_instance",
            "cmdb_ci_db_mysql_instance",
            "cmdb_ci_db_postgresql_instance",
        ),
        "network_device": (
            "network device",
            "network",
            "switch",
            "router",
            "firewall",
            "load balancer",
            "cmdb_ci_netgear",
            "cmdb_ci_ip_switch",
            "cmdb_ci_ip_router",
            "cmdb_ci_ip_firewall",
            "cmdb_ci_lb",
        ),
        "application": (
            "applications",
            "app",
            "business application",
            "business service",
            "service",
            "cmdb_ci_appl",
            "cmdb_ci_business_app",
            "cmdb_ci_service",
        ),
        "other": ("storage", "storage device", "san", "nas", "printer", "cmdb_ci_storage_device"),
    }
)


def _lookup(table: Mapping[str, str], what: str) -> Callable[[str], tuple[str | None, str | None]]:
    @lru_cache(maxsize=_CACHE_SIZE)
    def lookup(raw: str) -> tuple[str | None, str | None]:
        stripped = _present(raw)
        if stripped is None:
            return None, None
        canonical = table.get(_key(stripped))
        if canonical is None:
            return None, f"unrecognised {what} {_quote(stripped)}"
        return canonical, None

    return lookup


_environment: Final = _lookup(_ENVIRONMENTS, "environment")
_criticality: Final = _lookup(_CRITICALITIES, "business criticality")
_asset_type: Final = _lookup(_ASSET_TYPES, "asset type")


def normalize_environment(raw: str) -> tuple[str | None, str | None]:
    """Map an environment synonym (``"PRD"``, ``"pre-prod"``, ``"DEVL"``) to its canonical name.

    Canonical names: production, staging, test, development, dr, qa, uat, training, sandbox.
    """
    return _environment(raw)


def normalize_criticality(raw: str) -> tuple[str | None, str | None]:
    """Map a criticality (``"Mission critical"``, ``"Tier 2"``, ``"P1"``) to critical/high/...

    Numbers and tiers follow the usual convention that 1 is the most critical (tier 0 too).
    """
    return _criticality(raw)


def normalize_asset_type(raw: str) -> tuple[str | None, str | None]:
    """Map an asset type or ServiceNow class to server/application/database/network_device/other."""
    return _asset_type(raw)


# ------------------------------------------------------------------------------- int and text

_INT: Final = re.compile(
    r"([+-]?[0-9]{1,3}(?:,[0-9]{3})+|[+-]?[0-9]+)(?:\.0+)?"
    r"(?:\s*(?:cores?|vcores?|cpus?|vcpus?|processors?))?",
    re.ASCII,
)


@lru_cache(maxsize=_CACHE_SIZE)
def _int(raw: str, low: int, high: int) -> tuple[int | None, str | None]:
    stripped = _present(raw)
    if stripped is None:
        return None, None
    m = _INT.fullmatch(stripped.lower())
    if m is None:
        return None, f"not a whole number {_quote(stripped)}"
    number = int(m.group(1).replace(",", ""))
    if not low <= number <= high:
        return None, f"out of range {low}..{high} {_quote(stripped)}"
    return number, None


def normalize_int(raw: str, *, low: int, high: int) -> tuple[int | None, str | None]:
    """Parse a whole number such as ``"4"``, ``"4.0"`` or ``"4 vCPU"`` within ``low..high``.

    Expressions such as ``"2x4"`` are issues: sockets times cores, or cores times threads?
    """
    return _int(raw, low, high)


@lru_cache(maxsize=_CACHE_SIZE)
def _text(raw: str) -> tuple[str | None, str | None]:
    stripped = _present(raw)
    if stripped is None:
        return None, None
    return " ".join(stripped.split()), None


def normalize_text(raw: str) -> tuple[str | None, str | None]:
    """Strip and collapse inner whitespace; free text is never an issue."""
    return _text(raw)


_DEPENDENCY_SEPARATORS: Final = re.compile(r"[;,|\r\n]+")


@lru_cache(maxsize=_CACHE_SIZE)
def _depends_on(raw: str) -> tuple[tuple[str, ...] | None, str | None]:
    names: dict[str, None] = {}  # an ordered set: duplicates are dropped, order kept
    for part in _DEPENDENCY_SEPARATORS.split(raw):
        name = _present(part)
        if name is not None:
            names[" ".join(name.lower().removesuffix(".").split())] = None
    return (tuple(names), None) if names else (None, None)


def normalize_depends_on(raw: str) -> tuple[list[str] | None, str | None]:
    """Split a dependency list on ``;``, ``,``, ``|`` or line breaks into lower-case names."""
    names, problem = _depends_on(raw)
    return (list(names) if names is not None else None), problem


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


# Step kinds, so that the per-row loop branches on a small int instead of calling closures.
_PLAIN, _HOST, _OS, _DEPS, _CUSTOM, _OS_VERSION_COLUMN, _IDENTIFIER = range(7)

_PLAIN_NORMALISERS: Final[Mapping[str, Callable[[str], Result]]] = {
    "ip_address": _ip,
    "environment": _environment,
    "business_criticality": _criticality,
    "asset_type": _asset_type,
}


class RowCleanser:
    """Built once per flow from the approved mapping; cleanse() is called per row."""

    def __init__(
        self,
        mapping: Mapping[int, str],
        *,
        memory_unit_hint: str | None = None,
        storage_unit_hint: str | None = None,
    ) -> None:
        """Prepare the per-column steps.

        ``mapping`` maps 0-based column indexes to target attributes or ``"custom:<name>"``.
        The unit hints (from headers such as ``"RAM (MB)"``) are the unit of bare numbers.
        Raises ``ValueError`` for unknown attributes, an attribute mapped twice, negative column
        indexes or unknown units: the mapping was approved, so these are programming errors.
        """
        memory_factor = _unit_factor(memory_unit_hint or "GB")
        storage_factor = _unit_factor(storage_unit_hint or "GB")
        seen: set[str] = set()
        steps: list[tuple[int, int, str, Callable[..., Result], tuple[object, ...]]] = []
        for index, attribute in sorted(mapping.items()):
            if index < 0:
                raise ValueError(f"negative column index {index} for {attribute!r}")
            if attribute in seen:
                raise ValueError(f"attribute {attribute!r} is mapped from several columns")
            seen.add(attribute)
            if attribute.startswith(CUSTOM_PREFIX):
                name = attribute[len(CUSTOM_PREFIX) :]
                if not name:
                    raise ValueError(f"custom attribute without a name: {attribute!r}")
                steps.append((_CUSTOM, index, name, _text, ()))
            elif attribute not in TARGET_ATTRIBUTES:
                raise ValueError(f"unknown target attribute {attribute!r}")
            elif attribute == "hostname":
                steps.append((_HOST, index, attribute, _hostname, ()))
            elif attribute == "operating_system":
                steps.append((_OS, index, attribute, _os, ()))
            elif attribute == "os_version":
                steps.append((_OS_VERSION_COLUMN, index, attribute, _text, ()))
            elif attribute == "depends_on":
                steps.append((_DEPS, index, attribute, _depends_on, ()))
            elif attribute == "cpu_cores":
                steps.append((_PLAIN, index, attribute, _int, CPU_CORES_RANGE))
            elif attribute == "memory_gb":
                steps.append((_PLAIN, index, attribute, _size_gb, (memory_factor,)))
            elif attribute == "storage_gb":
                steps.append((_PLAIN, index, attribute, _size_gb, (storage_factor,)))
            elif attribute in IDENTIFIER_ATTRIBUTES:
                steps.append((_IDENTIFIER, index, attribute, _text, ()))
            else:
                plain = _PLAIN_NORMALISERS.get(attribute, _text)
                steps.append((_PLAIN, index, attribute, plain, ()))
        self._steps = tuple(steps)

    def cleanse(self, row: Sequence[str]) -> CleansedRow:
        """Cleanse one row; a column missing from a short row counts as an empty value."""
        values: dict[str, object] = {}
        issues: list[Issue] = []
        width = len(row)
        os_info: OsInfo | None = None
        os_version: str | None = None
        custom: dict[str, object] | None = None
        for kind, index, attribute, normalise, extra in self._steps:
            if index >= width:
                continue
            raw = row[index]
            value, problem = normalise(raw, *extra)
            if problem is not None:
                issues.append(Issue(attribute, raw[:MAX_ISSUE_VALUE], problem))
                continue
            if value is None:
                continue
            if kind == _PLAIN:
                values[attribute] = value
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
        if os_info is not None:
            # An explicit version column is more precise than what the OS string implies.
            version = os_info.version if os_version is None else os_version
            values["operating_system"] = f"{os_info.name} {version}" if version else os_info.name
            values["os_family"] = os_info.family
            values["os_version"] = version
        elif os_version is not None:
            values["os_version"] = os_version
        return CleansedRow(values, issues)
