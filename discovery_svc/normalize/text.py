"""Shared helpers (placeholders, quoting, lookup keys) and the free-text normalisers."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

from discovery_svc import vocab

CACHE_SIZE: Final = 65536
# Problems quote the value; a runaway cell must not turn every message into a megabyte.
_MAX_QUOTED: Final = 80

PLACEHOLDERS: Final = frozenset(v.casefold() for v in vocab.load("placeholders")["values"])

Result = tuple[object, str | None]


def present(raw: str) -> str | None:
    """The stripped value, or ``None`` when it is empty or a placeholder."""
    s = raw.strip()
    return None if s.casefold() in PLACEHOLDERS else s


def quote(s: str) -> str:
    """``s`` in double quotes, clipped to a readable length."""
    if len(s) > _MAX_QUOTED:
        s = s[: _MAX_QUOTED - 1] + "\u2026"
    return '"' + s + '"'


def key(s: str) -> str:
    """Lookup key for synonym tables: case, separators and spacing do not matter."""
    return " ".join(s.casefold().replace("-", " ").replace("_", " ").replace("/", " ").split())


@lru_cache(maxsize=CACHE_SIZE)
def text(raw: str) -> tuple[str | None, str | None]:
    stripped = present(raw)
    if stripped is None:
        return None, None
    return " ".join(stripped.split()), None


def normalize_text(raw: str) -> tuple[str | None, str | None]:
    """Strip and collapse inner whitespace; free text is never an issue."""
    return text(raw)


_DEPENDENCY_SEPARATORS: Final = re.compile(r"[;,|\r\n]+")


@lru_cache(maxsize=CACHE_SIZE)
def depends_on(raw: str) -> tuple[tuple[str, ...] | None, str | None]:
    names: dict[str, None] = {}  # an ordered set: duplicates are dropped, order kept
    for part in _DEPENDENCY_SEPARATORS.split(raw):
        name = present(part)
        if name is not None:
            names[" ".join(name.lower().removesuffix(".").split())] = None
    return (tuple(names), None) if names else (None, None)


def normalize_depends_on(raw: str) -> tuple[list[str] | None, str | None]:
    """Split a dependency list on ``;``, ``,``, ``|`` or line breaks into lower-case names.

    Not on spaces: dependencies are often application names such as ``Payroll Service``.
    """
    names, problem = depends_on(raw)
    return (list(names) if names is not None else None), problem
