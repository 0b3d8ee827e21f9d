"""Where DATA_CLEANSING's pages are cleansed: in spawned processes beside the phase's own, or
in the phase's process for a small import.

The cleanser is pure CPU. In the phase's process it would take turns with reading pages and
writing their output; in a pool, the next page is cleansed while the phase writes the last
one, so a large import keeps both cores busy. One pool serves every run of a process (phase
runs side by side share it, so they never start more cleansers than it has), started at the
first large import and kept: a process start costs about a second. It is spawned, not
forked: a fork of a process that runs gRPC's threads can hang.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from discovery_svc.domain.cleansing import CleansedBatch, RowCleanser

Rows = Sequence[tuple[int, Sequence[str]]]

_SLICE_ROWS = 250
"""In-process, rows cleansed between two yields to the event loop: the job's lease renewal
runs on the same loop, and a whole page could outlast a short lease on a loaded machine."""

_PARENT_POLL_SECONDS = 1.0

_pools: dict[int, ProcessPoolExecutor] = {}
"""This process's pools by size (one size in practice)."""


def _watch_parent(parent: int) -> None:
    """A pool process's initializer. ``parent`` is the pid the parent saw for itself: a
    process still starting when its parent died must not outlive it by taking its new parent
    for the one to watch."""
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int) -> None:
    # A pool process holds both ends of its task queue's pipe, so a SIGKILLed parent leaves it
    # waiting for work forever; it goes when it is re-parented.
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_SECONDS)
    os._exit(0)


def _cleanse(cleanser: RowCleanser, rows: Rows, width: int, copies: Sequence[int]) -> CleansedBatch:
    return cleanser.cleanse_batch(rows, width=width, copies=copies)


def _pool(processes: int) -> ProcessPoolExecutor:
    pool = _pools.get(processes)
    if pool is None:
        pool = _pools[processes] = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_watch_parent,
            initargs=(os.getpid(),),
        )
    return pool


def shutdown() -> None:
    """Stop this process's pools: pages not started are dropped, a page being cleansed is
    finished first."""
    while _pools:
        _, pool = _pools.popitem()
        pool.shutdown(wait=True, cancel_futures=True)


def default_processes() -> int:
    """One pool process per core, at most two: the phase's process and PostgreSQL take the
    rest, and more processes would only wait for them."""
    return max(1, min(2, os.cpu_count() or 1))


class CleansingPool:
    """Cleanses pages with one cleanser: in this process's pool of ``processes`` spawned
    processes, or in this process when ``processes`` is 0. ``depth`` is how many pages are
    worth having in flight. The cleanser travels with each page (it is small; its normalisers'
    memo tables live in the pool processes and carry over from page to page)."""

    def __init__(
        self, cleanser: RowCleanser, *, width: int, copies: Sequence[int], processes: int
    ) -> None:
        self._cleanser = cleanser
        self._width = width
        self._copies = tuple(copies)
        self._pool = _pool(processes) if processes > 0 else None
        self.depth = max(1, processes)

    async def cleanse(self, rows: Rows) -> CleansedBatch:
        if self._pool is not None:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._pool, _cleanse, self._cleanser, rows, self._width, self._copies
            )
        out = CleansedBatch([], [])
        for start in range(0, len(rows), _SLICE_ROWS):
            part = self._cleanser.cleanse_batch(
                rows[start : start + _SLICE_ROWS], width=self._width, copies=self._copies
            )
            out.rows.extend(part.rows)
            out.issues.extend(part.issues)
            await asyncio.sleep(0)
        return out
