"""Counting database round trips of everything in this process, whatever the code under test
uses (SQLAlchemy on asyncpg, or asyncpg directly).

Every exchange with the server that waits for its answer goes through one of asyncpg's
protocol coroutines (a simple query, a prepare, a bind-and-execute, a COPY, closing a
statement), so counting their calls counts round trips. The counter patches asyncpg's
``Protocol`` class, not flowpair's code, so it measures any version of the services alike.
"""

from __future__ import annotations

import contextlib
import functools
from collections import Counter
from collections.abc import Iterator
from typing import Any

import asyncpg
from asyncpg.protocol import Protocol

_ROUND_TRIPS = (
    "prepare",
    "bind_execute",
    "bind_execute_many",
    "bind",
    "execute",
    "query",
    "copy_in",
    "copy_out",
    "close_statement",
)


class RoundTrips:
    """Round trips made while counting, by protocol method; ``ignore`` a connection (the
    test's own observer) to leave it out."""

    def __init__(self) -> None:
        self.by_method: Counter[str] = Counter()
        self.by_statement: Counter[str] = Counter()
        self.counting = True
        self._ignored: set[int] = set()

    @property
    def total(self) -> int:
        return sum(self.by_method.values())

    def ignore(self, conn: asyncpg.Connection) -> None:
        self._ignored.add(id(conn._protocol))

    def _count(self, protocol: object, method: str, args: tuple[Any, ...]) -> None:
        if self.counting and id(protocol) not in self._ignored:
            self.by_method[method] += 1
            what = args[1] if method == "prepare" else (args[0] if args else "")
            text = what if isinstance(what, str) else getattr(what, "query", "")
            self.by_statement[f"{method}: {' '.join(str(text).split())[:90]}"] += 1


@contextlib.contextmanager
def counting() -> Iterator[RoundTrips]:
    """Count every round trip of every asyncpg connection of the process until exit."""
    counter = RoundTrips()
    originals = {name: getattr(Protocol, name) for name in _ROUND_TRIPS}

    def wrap(name: str, original: Any) -> Any:
        @functools.wraps(original)
        async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            counter._count(self, name, args)
            return await original(self, *args, **kwargs)

        return counted

    for name, original in originals.items():
        setattr(Protocol, name, wrap(name, original))
    try:
        yield counter
    finally:
        for name, original in originals.items():
            setattr(Protocol, name, original)
