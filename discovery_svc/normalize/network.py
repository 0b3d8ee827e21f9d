"""IP addresses and host names.

* IPv4 octets with leading zeros (``010.001.002.003``) are read as decimal. ``ipaddress``
  rejects them because some C libraries read them as octal, but CMDB exports pad octets so that
  addresses sort as text; nobody writes octal addresses in an inventory.
* Host names may contain ``_``: it is not valid in DNS, but NetBIOS names of Windows servers
  use it commonly and those names do turn up in CMDBs. Any other symbol is an issue.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from discovery_svc.normalize.text import CACHE_SIZE as _CACHE_SIZE
from discovery_svc.normalize.text import present as _present
from discovery_svc.normalize.text import quote as _quote


@dataclass(frozen=True, slots=True)
class HostInfo:
    """A host name split into short name and domain, all lower-case."""

    hostname: str
    domain: str
    fqdn: str


_SEVERAL: Final = re.compile(r"[\s,;|]+")
_IPV4_PADDED: Final = re.compile(r"[0-9]+(?:\.[0-9]+){3}", re.ASCII)


def _unpad_ipv4(address: str) -> str:
    if _IPV4_PADDED.fullmatch(address):
        return ".".join(str(int(octet)) for octet in address.split("."))
    return address


def _dotted_quad(address: str) -> str | None:
    """The canonical text of a plain (possibly zero-padded) IPv4 address, else ``None``.

    Most cells are this shape; ``ipaddress`` would give the same text at many times the cost.
    """
    if not _IPV4_PADDED.fullmatch(address):
        return None
    octets = [int(octet) for octet in address.split(".")]
    if max(octets) > 255:
        return None  # the full parser words the problem
    return ".".join(map(str, octets))


@lru_cache(maxsize=_CACHE_SIZE)
def ip(raw: str) -> tuple[str | None, str | None]:
    stripped = _present(raw)
    if stripped is None:
        return None, None
    quad = _dotted_quad(stripped)
    if quad is not None:
        return quad, None
    parts = [part for part in _SEVERAL.split(stripped) if part]
    if len(parts) > 1:
        return _primary(parts, stripped)
    address, slash, prefix = stripped.partition("/")
    text = _unpad_ipv4(address) + slash + prefix
    try:
        # ip_interface accepts "10.0.0.1/24" and keeps the host address, not the network.
        parsed = ipaddress.ip_interface(text).ip
    except ValueError:
        return None, f"invalid IP address {_quote(stripped)}"
    return str(parsed), None


def _primary(parts: list[str], stripped: str) -> tuple[str | None, str | None]:
    """The host's address among several in one cell ("10.0.0.5, fe80::1"): the first global
    IPv4, else the first global IPv6. Link-local and loopback addresses never are; a cell
    holding anything but addresses is an issue."""
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for part in parts:
        address, problem = ip(part)
        if problem is not None or address is None:
            return None, f"several values in one address cell, not all addresses {_quote(stripped)}"
        found.append(ipaddress.ip_address(address))
    usable = [a for a in found if not (a.is_link_local or a.is_loopback or a.is_unspecified)]
    for family in (4, 6):
        for a in usable:
            if a.version == family:
                return str(a), None
    return None, f"only link-local or loopback addresses {_quote(stripped)}"


def normalize_ip(raw: str) -> tuple[str | None, str | None]:
    """Validate an IPv4/IPv6 address and return its canonical text.

    Interface notation (``"10.0.0.1/24"``) keeps the address. Of several addresses in one value
    (a multi-homed host, an IPv4 beside its link-local IPv6) the first global IPv4 is taken.
    """
    return ip(raw)


_LABEL: Final = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?", re.ASCII)
# Every label at once: labels hold no dot, so this is each label matching _LABEL.
_LABELS: Final = re.compile(rf"{_LABEL.pattern}(?:\.{_LABEL.pattern})*", re.ASCII)
# Without a colon only IPv4 can parse, and IPv4 is digits and dots (ipaddress checks octets
# with isascii() and isdigit()).
_NOT_IPV4: Final = re.compile(r"[^0-9.]", re.ASCII)
# Unicode \s is str.isspace(), one C loop instead of a generator over the characters.
_SPACE: Final = re.compile(r"\s")


def _looks_like_ip(s: str) -> bool:
    address = s.partition("/")[0]
    if ":" not in address and _NOT_IPV4.search(address):
        return False
    try:
        ipaddress.ip_address(_unpad_ipv4(s.partition("/")[0]))
    except ValueError:
        return False
    return True


@lru_cache(maxsize=_CACHE_SIZE)
def hostname(raw: str) -> tuple[HostInfo | None, str | None]:
    stripped = _present(raw)
    if stripped is None:
        return None, None
    name = stripped.lower().removesuffix(".")
    if _looks_like_ip(name):
        return None, f"looks like an IP address, not a host name {_quote(stripped)}"
    if _SPACE.search(name):
        return None, f"host name contains spaces {_quote(stripped)}"
    labels = name.split(".")
    if len(name) > 253 or not _LABELS.fullmatch(name):
        return None, f"invalid host name {_quote(stripped)}"
    # Labels are not empty (_LABELS), so n of them in 2n - 1 characters are one letter each.
    if len(labels) > 1 and len(name) == 2 * len(labels) - 1:
        # "o.A.", "z.B.": an abbreviation with dots, no host (no TLD has one letter). Missing,
        # like a placeholder: identity reports it, and never keys a row by it.
        return None, None
    domain = ".".join(labels[1:])
    return HostInfo(labels[0], domain, name), None


def normalize_hostname(raw: str) -> tuple[HostInfo | None, str | None]:
    """Split a host name or FQDN into lower-case short name, domain and FQDN.

    Letters, digits, ``-`` and ``_`` are allowed in each label; spaces, other symbols and IP
    addresses are issues.
    """
    return hostname(raw)
