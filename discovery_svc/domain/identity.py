"""Asset identity: which cleansed rows are the same asset, and which value a merged asset takes.

The rules, applied by ASSET_INVENTORY (``discovery_svc/adapters/inventory.py`` holds the SQL):

**The key.** Each row gets one identity key, by the flow's :class:`IdentityKey` strategy
(``Flow.identity_key`` in the protos). The default (``HOST_THEN_NAME``) takes the first of:

1. the host name, as short name plus its domain's first label (``web01.corp`` for
   ``web01.corp.example``): equal short names in different domains are different assets, and
   a domain column's NetBIOS name (``CORP``) is the DNS domain it starts, in whichever order
   flows bring them (the asset keeps the DNS domain). A short name without a domain joins the
   one domain that name has in the flow or the engagement; with two or more, it stays apart
   and the row gets an issue saying the name is ambiguous. Two DNS domains with one first
   label (``corp.a.example``, ``corp.b.example``) are taken as one;
2. a host name the cleanser rejected (spaces or odd characters, e.g. ``AFPE -4365``): the name
   is kept as written (lower-cased, inner spaces collapsed) and still identifies the asset; the
   cleansing issue reports it. A host cell that holds an IP address is not a name;
3. the asset name, then the asset tag;
4. only for a row that carries no name at all: its serial number, then its IP address.

``NAME_AND_SERIAL`` and ``NAME_AND_TAG`` add the serial number or the asset tag to the name:
equal names with different serials (tags) are different assets, e.g. a host name reused.

Serial numbers and IP addresses are supporting evidence only: two rows whose names differ are
never merged on a shared serial or IP. A serial or IP shared by assets of different names is
reported on each such row.

**Placeholders never identify.** Names listed in ``discovery_svc/vocab/placeholders.json`` (the
cleanser's vocabulary, with its name-only words and qualifiers: ``unknown``, ``Name_unknown``,
``unknown host``, ``N/A``, ``TBD``, ``-``, ``k.A.``, SCCM's ``x64 Unknown Computer (x64 Unknown
Computer)``, ...) are skipped, the row falls to the
next key, and the row gets an issue naming the placeholder.

**No row vanishes.** A row ends linked to an asset (a host or an application) or with an issue
saying why it made none.

**Merging.** The rows of one asset are ranked: the most complete row first (most attributes
present), then the latest row (highest row number). Each field takes its value from the
highest-ranked row that has one, never a maximum over text. A row whose value differs from the
one taken (two operating systems for one host) gets an issue naming both.

**Later flows and re-runs.** An asset is the same across flows of an engagement when its key
is. A later flow (or a re-run, which counts as the latest) replaces a field only where it has a
value. The asset type and display name are *given* when a row states them (an ``asset_type``
column, an asset name) and *derived* otherwise (inferred from the name and OS; the host name):
a derived value never replaces a given one.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Final

from discovery_svc import vocab
from flowpair_shared.domain import IdentityKey

__all__ = ["ISSUE_PREFIX", "IdentityKey", "normalize_name", "placeholder_names"]

ISSUE_PREFIX: Final = "identity: "
"""Every issue ASSET_INVENTORY writes starts with this, so a re-run can replace them."""


_SEPARATORS: Final = re.compile(r"[\s_./-]+")
SQL_NORMALIZE: Final = r"btrim(regexp_replace(lower({}), '[\s_./-]+', ' ', 'g'))"
""":func:`normalize_name` in SQL; ``{}`` is the expression to normalise."""


def normalize_name(name: str) -> str:
    """Lower-case, with runs of spaces, ``_``, ``-``, ``.`` and ``/`` as one space."""
    return _SEPARATORS.sub(" ", name.lower()).strip()


@cache
def placeholder_names() -> frozenset[str]:
    """Every normalised name that never identifies an asset."""
    data = vocab.load("placeholders")
    raw = [*data["values"], *data["name_words"]]
    words = {normalize_name(w) for w in raw} | {w.lower() for w in raw}
    qualifiers = [normalize_name(q) for q in data["qualifiers"]]
    names = set(words)
    for word in words:
        for qualifier in qualifiers:
            names.add(f"{qualifier} {word}".strip())
            names.add(f"{word} {qualifier}".strip())
    # SCCM lists its pseudo-records with the name repeated in brackets:
    # "x64 Unknown Computer (x64 Unknown Computer)", "Provisioning Device (...)".
    names |= {f"{word} ({word})" for word in words if word}
    return frozenset(names)


@cache
def _workgroups() -> frozenset[str]:
    return frozenset(normalize_name(w) for w in vocab.load("workgroups")["values"])


def is_workgroup(domain: str) -> bool:
    """Whether a domain column's value says "no domain" (``WORKGROUP``, ``(none)``)."""
    return normalize_name(domain) in _workgroups() or is_placeholder(domain)


_ABBREVIATION: Final = re.compile(r"[^\W\d_](?:\.\s?[^\W\d_])+\.?")
SQL_ABBREVIATION: Final = r"^[[:alpha:]](\.\s?[[:alpha:]])+\.?$"
""":data:`_ABBREVIATION` for PostgreSQL's ``~``."""


def is_placeholder(name: str) -> bool:
    """Whether a name never identifies an asset: a listed placeholder, or an abbreviation
    with dots ("o.A.", "N.N.": no host name has only one-letter labels)."""
    stripped = name.strip()
    return normalize_name(stripped) in placeholder_names() or bool(
        _ABBREVIATION.fullmatch(stripped)
    )
