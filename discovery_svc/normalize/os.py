"""Operating systems: family, product and version from the strings inventories hold.

The products, release names and version patterns are in ``vocab/operating_systems.json``;
this module applies them. Decisions that are not obvious from the data:

* An OS string naming several versions (``Oracle Linux 4/5/6 (64-bit)``, a ServiceNow catalogue
  entry) yields the product with an empty version and no issue: the product is certain, and
  picking one of the versions would be a guess.
* A RHEL-family kernel or package release (``el8_9``, ``el7``) is the version when present:
  ``4.18.0-513.el8_9.x86_64`` is 8.9, whatever the kernel's own numbers.
* A version column (:func:`merge_version`) is more precise than the OS string, except that it
  does not drop what only the string says: ``SLES 15 SP4`` with version ``15`` stays
  ``15 SP4``, and ``SLES 15`` with version ``SP4`` becomes ``15 SP4``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from discovery_svc import vocab
from discovery_svc.normalize.text import CACHE_SIZE, present, quote


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
class _Product:
    pattern: re.Pattern[str]
    family: str
    name: str
    version: re.Pattern[str] | None


_VOCAB: Final = vocab.load("operating_systems")
_WIN: Final = re.compile(_VOCAB["windows"]["pattern"], re.ASCII)
_WIN_DESKTOP: Final = re.compile(_VOCAB["windows"]["desktop"], re.ASCII)
_WIN_NT: Final = re.compile(_VOCAB["windows"]["nt"], re.ASCII)
_WIN_SERVER_YEARS: Final = frozenset(_VOCAB["windows"]["server_years"])
# "2k8", "2k12r2", "2019", "2k" (= 2000); only known server releases count as server years.
_WIN_YEAR: Final = re.compile(r"(?<![0-9])(?:2k([0-9]{0,2})|20([0-9]{2}))(?![0-9])(\s*r2)?")
_SERVICE_PACK: Final = re.compile(r"\b(?:sp|service\s+pack)\s*([0-9]+)(?![0-9])")
_EL: Final = re.compile(_VOCAB["el_version"], re.ASCII)
_OS_NOISE: Final = re.compile(_VOCAB["noise"], re.ASCII)
_OS_VERSION: Final = re.compile(
    r"(?<![a-z0-9.])([0-9]+(?:\.[0-9]+)*)(?![0-9])(?:\s*sp\s*([0-9]+)(?![0-9]))?", re.ASCII
)
_PRODUCTS: Final = tuple(
    _Product(
        re.compile(p["pattern"], re.ASCII),
        p["family"],
        p["name"],
        re.compile(p["version"], re.ASCII | re.IGNORECASE) if "version" in p else None,
    )
    for p in _VOCAB["products"]
)


def _windows(s: str, raw: str) -> tuple[OsInfo | None, str | None]:
    sp = _SERVICE_PACK.search(s)
    pack = f" SP{sp.group(1)}" if sp else ""
    desktop = _WIN_DESKTOP.search(s)
    if desktop:
        release = desktop.group(1)
        version = release.upper() if release == "xp" else release.capitalize()
        return OsInfo("windows", "Windows", version + pack), None
    year_match = _WIN_YEAR.search(s)
    if year_match:
        digits = year_match.group(1) if year_match.group(1) is not None else year_match.group(2)
        year = 2000 + int(digits or "0")
        if year in _WIN_SERVER_YEARS:
            version = f"{year} R2" if year_match.group(3) else str(year)
            return OsInfo("windows", "Windows Server", version + pack), None
    nt = _WIN_NT.search(s)
    if nt:
        return OsInfo("windows", "Windows NT", nt.group(1) + pack), None
    if any(c.isdigit() for c in _OS_NOISE.sub(" ", _SERVICE_PACK.sub(" ", s))):
        # "Windows 2077": a version we do not know is still a version.
        return None, f"unrecognised Windows version {quote(raw)}"
    name = "Windows Server" if "server" in s else "Windows"
    return OsInfo("windows", name, pack.strip()), None


def _version(product: _Product, s: str, original: str, rest: str) -> str:
    el = _EL.search(s)
    if el and product.family == "linux":
        return el.group(1) + (f".{el.group(2)}" if el.group(2) else "")
    if product.version is not None:
        m = product.version.search(original)
        if m is None:
            return ""
        groups = [g for g in m.groups() if g]
        version = ".".join(groups[:2]) if len(groups) > 1 else groups[0]
        if product.name == "AIX" and m.group(3):
            version = f"{m.group(3)}.{m.group(4)}"
        sp = _SERVICE_PACK.search(rest)
        return f"{version} SP{sp.group(1)}" if sp else version
    versions = {f"{number} SP{sp}" if sp else number for number, sp in _OS_VERSION.findall(rest)}
    # Several versions ("4/5/6") are a catalogue entry, not this host's version.
    return versions.pop() if len(versions) == 1 else ""


@lru_cache(maxsize=CACHE_SIZE)
def operating_system(raw: str) -> tuple[OsInfo | None, str | None]:
    stripped = present(raw)
    if stripped is None:
        return None, None
    s = stripped.lower()
    if _WIN.search(s):
        return _windows(s, stripped)
    for product in _PRODUCTS:
        m = product.pattern.search(s)
        if m is None:
            continue
        rest = _OS_NOISE.sub(" ", s[: m.start()] + " " + s[m.end() :])
        rest = _EL.sub(" ", rest)
        return OsInfo(product.family, product.name, _version(product, s, stripped, rest)), None
    return None, f"unrecognised operating system {quote(stripped)}"


def normalize_os(raw: str) -> tuple[OsInfo | None, str | None]:
    """Recognise an operating system string (``"Win2k12R2"``, ``"RHEL 8.6"``, ``"SLES 15 SP4"``).

    Windows server releases are named ``"Windows Server"`` with the release year (plus ``R2``);
    desktop releases are ``"Windows"`` with ``"7"``, ``"10"``, ... An unknown product is an issue.
    """
    return operating_system(raw)


def merge_version(parsed: str, column: str) -> str:
    """The version from a separate version column merged with the one the OS string gave."""
    sp = _SERVICE_PACK.search(column.lower())
    pack = f"SP{sp.group(1)}" if sp else ""
    base = " ".join(_SERVICE_PACK.sub(" ", column.lower()).split()) if sp else column
    if not base:
        # Only a service pack: it completes the string's version rather than replacing it.
        kept = " ".join(w for w in parsed.split() if not w.startswith("SP"))
        return f"{kept} {pack}".strip()
    if not pack and (parsed == base or parsed.startswith(base + " ")):
        return parsed
    return f"{base} {pack}".strip()
