"""A closed set of words as a contract enum (``<PREFIX>_<WORD>``), both directions.

The discovery service's inventory vocabularies (``discovery_svc/entrypoints/vocabularies.py``)
and the orchestrator's peers use it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

from flowpair_shared.errors import Validator

log = logging.getLogger("flowpair.discovery.vocabularies")


V = TypeVar("V", bound=int)


class _Enum(Protocol[V]):
    """What a generated enum type offers (its wrapper's methods)."""

    def Name(self, number: V) -> str: ...
    def Value(self, name: str) -> V: ...
    def keys(self) -> list[str]: ...


class Vocabulary(Generic[V]):
    """One closed set: its words and the enum that names them (``<PREFIX>_<WORD>``)."""

    def __init__(self, enum: _Enum[V], prefix: str, words: Iterable[str]) -> None:
        self.enum = enum
        self.prefix = prefix
        self.words = frozenset(words)
        self._unspecified = enum.Value(prefix + "UNSPECIFIED")
        # Both directions once: ListAssets converts five values per asset.
        names = enum.keys()  # an enum type wrapper is not a container
        self._number = {
            name.removeprefix(prefix).lower(): enum.Value(name)
            for name in names
            if name != prefix + "UNSPECIFIED"
        }
        self._word = {number: word for word, number in self._number.items()}
        self._warned: set[str] = set()

    def number(self, word: str | None) -> V:
        """The enum value of a stored word; UNSPECIFIED for none. A word the contract does not
        name (data older than its vocabulary) reads as UNSPECIFIED and is logged (once per
        word), rather than failing every list that contains it."""
        if not word:
            return self._unspecified
        found = self._number.get(word.lower())
        if found is None:
            if word not in self._warned:
                self._warned.add(word)
                log.warning("a stored value the contract does not name", extra={"value": word})
            return self._unspecified
        return found

    def text(self, number: V) -> str:
        """The word an enum value names, as people read it ("virtual_machine"); empty for
        UNSPECIFIED."""
        return self._word.get(number, "")

    def word(self, number: V, field: str, v: Validator) -> str | None:
        """The word a request's enum value names; None for UNSPECIFIED (no filter), and a
        violation for a number the contract does not define."""
        if number == 0:
            return None
        found = self._word.get(number)
        if found is None:
            v.add(field, f"unknown value {number}")
        return found
