"""One LISTEN connection per process, shared by everything that waits for other commits.

A callback gets the notification's payload, or None after a (re)connect: notifications sent
while the connection was down are lost, so subscribers then re-check their state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

from flowpair_shared import tasks

log = logging.getLogger("flowpair.notify")

Callback = Callable[[str | None], None]


class Listener:
    """LISTENs on every subscribed channel; reconnects on failure."""

    def __init__(self, dsn: str, *, check_interval: float = 2.0) -> None:
        self._dsn = dsn
        self._check_interval = check_interval
        self._subscribers: dict[str, list[Callback]] = {}
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, channel: str, callback: Callback) -> None:
        """Call ``callback`` for each notification on ``channel`` (subscribe before start)."""
        self._subscribers.setdefault(channel, []).append(callback)

    def start(self) -> None:
        if self._subscribers and self._task is None:
            self._task = asyncio.create_task(self._run(), name="pg-listener")

    async def stop(self) -> None:
        await tasks.cancelled(self._task)
        self._task = None

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: object) -> None:
        for callback in self._subscribers.get(channel, ()):
            callback(str(payload))

    async def _run(self) -> None:
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn)
                for channel in self._subscribers:
                    await conn.add_listener(channel, self._dispatch)
                for callbacks in self._subscribers.values():
                    for callback in callbacks:
                        callback(None)
                while not conn.is_closed():
                    await asyncio.sleep(self._check_interval)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("listener reconnecting", extra={"error": repr(error)})
                await asyncio.sleep(self._check_interval)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=1))
