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


@lru_cache(maxsize=_CACHE_SIZE)
def ip(raw: str) -> tuple[str | None, str | None]:
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
    return ip(raw)


_LABEL: Final = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?", re.ASCII)


def _looks_like_ip(s: str) -> bool:
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
    return hostname(raw)
