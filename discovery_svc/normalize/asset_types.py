"""Asset types: a source's class names mapped to a closed set, and a last-resort guess.

The class names of ServiceNow, Device42, Lansweeper, SCCM/MECM and vCenter/RVTools exports
are in ``vocab/asset_types.json``. A ``cmdb_ci_*`` table name not listed is looked up again
without its prefix (``cmdb_ci_ip_switch`` -> ``ip switch``). A row with no type is typed by
:func:`guess_asset_type`, which says why; its guesses from a name use whole words of host-like
names only (``db-prod-01``, never ``PGPadmin`` nor ``Microsoft SQL Server 2005 Books Online``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Final

from discovery_svc import vocab
from discovery_svc.normalize.lookups import table
from discovery_svc.normalize.os import is_client_os
from discovery_svc.normalize.text import CACHE_SIZE, key, present, quote

_VOCAB: Final = vocab.load("asset_types")

ASSET_TYPES: Final[tuple[str, ...]] = tuple(_VOCAB["precedence"])
"""Every asset type, in order of precedence: when the rows of one asset name several types,
the first wins (a host listed as a database and as a virtual machine is a database server)."""

_CLASSES: Final = table(_VOCAB["classes"])
_HINTS: Final[Mapping[str, str]] = {
    word: asset_type for asset_type, words in _VOCAB["name_hints"].items() for word in words
}
_TABLE_PREFIX: Final = "cmdb ci "
_WORD: Final = re.compile(r"[a-z]+|[0-9]+")


@lru_cache(maxsize=CACHE_SIZE)
def asset_type(raw: str) -> tuple[str | None, str | None]:
    stripped = present(raw)
    if stripped is None:
        return None, None
    k = key(stripped)
    found = _CLASSES.get(k)
    if found is None and k.startswith(_TABLE_PREFIX):
        found = _CLASSES.get(k.removeprefix(_TABLE_PREFIX))
    if found is None:
        return None, f"unrecognised asset type {quote(stripped)}"
    return found, None


def normalize_asset_type(raw: str) -> tuple[str | None, str | None]:
    """Map an asset type or a source's class name to one of :data:`ASSET_TYPES`."""
    return asset_type(raw)


@lru_cache(maxsize=CACHE_SIZE)
def _name_hint(label: str) -> tuple[str, str] | None:
    if any(c.isspace() for c in label):
        return None  # a product or application name, not a host's
    for word in _WORD.findall(label.lower()):
        hinted = _HINTS.get(word)
        if hinted is not None:
            return hinted, f"guessed from the word {quote(word)} in the name {quote(label)}"
    return None


def guess_asset_type(values: Mapping[str, object]) -> tuple[str, str]:
    """The type of a row without one, from its other cleansed values, and the reason.

    In order: a name that is a host name with a telling word (``db``, ``sql``, ``sw``, ``fw``
    ...) and no operating system; a desktop operating system (``Windows 10``, ``Windows NT
    Workstation``, ``macOS``: an end-user computer); a host name, OS or IP address (a server);
    an application and an asset name (an application); otherwise ``other``.
    """
    label = values.get("hostname") or values.get("asset_name")
    if isinstance(label, str) and "os_family" not in values:
        hinted = _name_hint(label)
        if hinted is not None:
            return hinted
    os_name = values.get("operating_system")
    if isinstance(os_name, str) and is_client_os(os_name):
        return "end_user_computer", f"no type given; {quote(os_name)} is a desktop operating system"
    if "operating_system" in values or "hostname" in values or "ip_address" in values:
        return "server", "no type given; it has a host name, an OS or an IP address"
    if "application_name" in values and "asset_name" in values:
        return "application", "no type given; it has an application and an asset name"
    return "other", "no type given, and nothing else tells"


_SIGNATURES: Final[Mapping[str, Mapping[str, object]]] = {
    name: spec for name, spec in _VOCAB["export_signatures"].items() if not name.startswith("_")
}


def _compact(header: str) -> str:
    return "".join(_WORD.findall(header.lower()))


def export_type(headers: Sequence[str]) -> tuple[str, str] | None:
    """The type every row of an export is, when its header tells (a vCenter VM list), and why.

    Headers compare by their letters and digits only ("NumCpu", "num_cpu" and "numcpu" meet).
    """
    present_headers = {_compact(h): h.strip() for h in headers}
    for name, spec in _SIGNATURES.items():
        wanted = spec["headers"]
        minimum = spec["min_headers"]
        assert isinstance(wanted, list) and isinstance(minimum, int)
        hits = sorted({present_headers[w] for w in map(_compact, wanted) if w in present_headers})
        if len(hits) >= minimum:
            asset_type = spec["asset_type"]
            assert isinstance(asset_type, str)
            return asset_type, f"no type given; the export is a {name} list ({', '.join(hits)})"
    return None
