"""Operating systems: family, product and version from the strings inventories hold.

The products, release names and version patterns are in ``vocab/operating_systems.json``;
this module applies them. Decisions that are not obvious from the data:

* An OS string naming several versions (``Oracle Linux 4/5/6 (64-bit)``, a ServiceNow catalogue
  entry) yields the product with an empty version and no issue: the product is certain, and
  picking one of the versions would be a guess.
* A RHEL-family kernel or package release (``el8_9``, ``el7``) is the version when present:
  ``4.18.0-513.el8_9.x86_64`` is 8.9, whatever the kernel's own numbers.
* Windows as a kernel version (SCCM's ``Microsoft Windows NT Server 6.3``) is named by its
  release where edition and kernel say it (2012 R2); kernel 10.0 is several server releases,
  so ``Windows Server`` has no year unless a build number tells it (17763 is 2019).
* VMware's guest string ``vm-name:Microsoft Windows Server 2019 (64-bit)`` loses the VM's
  name when the rest is an OS; ``vm-name:`` alone is no OS.
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
_WIN_BUILD: Final = re.compile(_VOCAB["windows"]["build"], re.ASCII)
_NT_EDITIONS: Final[dict[str, frozenset[str]]] = {
    edition: frozenset(words) for edition, words in _VOCAB["windows"]["nt_editions"].items()
}
_NT_RELEASES: Final[dict[str, dict[str, str]]] = _VOCAB["windows"]["nt_releases"]
_NT_BUILDS: Final[dict[str, dict[str, dict[str, dict[str, str]]]]] = _VOCAB["windows"]["nt_builds"]
# Desktop releases that share their kernel with later ones, which only a build tells apart.
_DESKTOP_KERNELS: Final = {"10": "10.0"}
_CLIENT_RELEASES: Final = frozenset(r.casefold() for r in _VOCAB["windows"]["client_releases"])
_CLIENT_PRODUCTS: Final = frozenset(_VOCAB["client_products"])
_NOT_OS_VERSION: Final = re.compile(_VOCAB["not_os_version"], re.ASCII | re.IGNORECASE)
_GUEST_PREFIX: Final = re.compile(_VOCAB["guest_prefix"], re.ASCII | re.IGNORECASE | re.DOTALL)
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

OS_FAMILIES: Final[frozenset[str]] = frozenset({"windows", *(p.family for p in _PRODUCTS)})
"""Every family an ``OsInfo`` can name: Windows's, which the code recognises, and the
vocabulary's products'."""


def _windows(s: str, raw: str) -> tuple[OsInfo | None, str | None]:
    sp = _SERVICE_PACK.search(s)
    pack = f" SP{sp.group(1)}" if sp else ""
    desktop = _WIN_DESKTOP.search(s)
    if desktop:
        release = desktop.group(1)
        version = release.upper() if release == "xp" else release.capitalize()
        kernel = _DESKTOP_KERNELS.get(version)
        if kernel is not None:
            # Windows 11 still calls itself "Windows 10" in the registry; its build tells.
            builds = _NT_BUILDS.get("workstation", {}).get(kernel, {})
            version = _release_of_build(builds, _build(s)) or version
        return OsInfo("windows", "Windows", version + pack), None
    year_match = _WIN_YEAR.search(s)
    if year_match:
        digits = year_match.group(1) if year_match.group(1) is not None else year_match.group(2)
        year = 2000 + int(digits or "0")
        if year in _WIN_SERVER_YEARS:
            version = f"{year} R2" if year_match.group(3) else str(year)
            return OsInfo("windows", "Windows Server", version + pack), None
    nt = _WIN_NT.search(s)
    if nt and (nt.group(1) or "." in nt.group(3)):
        return _windows_nt(s, nt, pack), None
    if any(c.isdigit() for c in _OS_NOISE.sub(" ", _SERVICE_PACK.sub(" ", s))):
        # "Windows 2077": a version we do not know is still a version.
        return None, f"unrecognised Windows version {quote(raw)}"
    name = "Windows Server" if "server" in s else "Windows"
    return OsInfo("windows", name, pack.strip()), None


def _build(s: str, nt: re.Match[str] | None = None) -> int | None:
    """The build number written in ``s`` ("10.0.17763", "Build 17763", "(17763)"), if any."""
    if nt is not None and nt.group(4):
        return int(nt.group(4))
    found = _WIN_BUILD.search(s)
    return int(next(g for g in found.groups() if g)) if found else None


def _release_of_build(builds: dict[str, dict[str, str]], build: int | None) -> str | None:
    """The release a build names: an exact build, or the last ``from`` build at or below it;
    ``""`` for a build that names none, ``None`` without a build."""
    if build is None:
        return None
    exact = builds.get("exact")
    if exact is not None:
        return exact.get(str(build), "")
    release = ""
    for first, named in sorted((int(b), r) for b, r in builds.get("from", {}).items()):
        if build >= first:
            release = named
    return release


def _nt_edition(words: str) -> str | None:
    """``server``, ``workstation`` or ``None`` (not said) for the words before a kernel."""
    said = set(words.split())
    for edition, edition_words in _NT_EDITIONS.items():
        if said & edition_words:
            return edition
    return None


def _windows_nt(s: str, nt: re.Match[str], pack: str) -> OsInfo:
    """``Windows NT Server 6.3`` (SCCM's caption) is Windows Server 2012 R2, and so on.

    A kernel and an edition name the release when only one release has them; a build number
    tells releases that share a kernel (10.0 is Server 2016, 2019, 2022 and 2025 alike).
    """
    edition = _nt_edition(nt.group(2))
    kernel = nt.group(3)
    if edition is None:
        return OsInfo("windows", "Windows NT", kernel + pack)
    name = "Windows Server" if edition == "server" else "Windows"
    builds = _NT_BUILDS.get(edition, {}).get(kernel)
    if builds is not None:
        release = _release_of_build(builds, _build(s, nt))
        if release:
            return OsInfo("windows", name, release + pack)
        if release == "" and "exact" in builds:
            return OsInfo("windows", name, pack.strip())  # a build of no named release
    release = _NT_RELEASES.get(edition, {}).get(kernel)
    if release is not None:
        return OsInfo("windows", name, release + pack)
    if builds is not None:
        return OsInfo("windows", name, pack.strip())  # a kernel of several releases
    return OsInfo("windows", f"Windows NT {edition.capitalize()}", kernel + pack)


def is_client_os(display: str) -> bool:
    """Whether an operating system (as the cleanser wrote it) runs on desktops and laptops:
    ``Windows 10``, ``Windows NT Workstation 4.0``, ``macOS 14.2``; not ``Windows Server``."""
    info, _ = operating_system(display)
    if info is None:
        return False
    if info.name in _CLIENT_PRODUCTS:
        return True
    release = _SERVICE_PACK.sub(" ", info.version.lower()).strip()
    return info.name == "Windows" and release in _CLIENT_RELEASES


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
    guest = _GUEST_PREFIX.match(stripped)
    if guest is not None:
        # VMware's "vm-name:Microsoft Windows Server 2019 (64-bit)": the VM's name is no part of
        # the OS (its digits are no version); "vm-name:" alone reports no guest OS.
        rest = guest.group(2).strip()
        if present(rest) is None:
            return None, None
        parsed = _parse(rest)
        if parsed[0] is not None:
            return parsed
    return _parse(stripped)


def _parse(stripped: str) -> tuple[OsInfo | None, str | None]:
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
    """The version from a separate version column merged with the one the OS string gave.

    A value that is no OS version (a VM hardware version ``v19``/``vmx-19`` in a ``Version``
    column) leaves the string's version as it is.
    """
    if _NOT_OS_VERSION.fullmatch(column.strip()):
        return parsed
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
