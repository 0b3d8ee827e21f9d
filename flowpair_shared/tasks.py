"""Small helpers for the services' background asyncio tasks."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancelled(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel the tasks (None: no task) and wait until each has finished unwinding; all are
    cancelled before the first is waited for, so they unwind together."""
    started = [task for task in tasks if task is not None]
    for task in started:
        task.cancel()
    for task in started:
        with contextlib.suppress(asyncio.CancelledError):
            await task
