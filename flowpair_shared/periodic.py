"""Background work that repeats a round every few seconds until the service stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from flowpair_shared.dbfailures import Failure, classify


class Periodic:
    """Runs ``run_once`` at start and then every ``interval`` seconds (0: never starts). A
    round that fails is logged and the next one tries again; ``stop`` lets the round in
    progress finish (rounds check ``stopping`` between their steps)."""

    def __init__(self, *, name: str, interval: float, log: logging.Logger) -> None:
        self._name = name
        self._interval = interval
        self._log = log
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def start(self) -> None:
        if self._interval <= 0:
            return
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def run_once(self) -> object:
        raise NotImplementedError

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except Exception as error:
                if classify(error) is Failure.UNAVAILABLE:
                    self._log.warning("%s failed: database unavailable: %r", self._name, error)
                else:
                    self._log.exception("%s failed", self._name)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._stopping.wait()
