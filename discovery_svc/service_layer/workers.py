"""Phase workers: the discovery service's phases run in processes of their own.

A phase is CPU work (the cleanser's per-row loop) and long statements; on the serving event
loop it delays every RPC and the relay for as long as it computes. The service starts
``count`` worker processes (spawned, never forked: a fork would copy the parent's event loop,
gRPC threads and pooled connections). Each has its own event loop, engine and LISTEN
connection, and runs a ``PhaseRunner`` that claims phase jobs and commits progressively.

- **Parent death.** Each worker holds the read end of a pipe whose only write end is the
  parent's. When the parent dies, however it dies (SIGKILL included), the kernel closes that
  end, the pipe reads end-of-file and the worker stops: no orphan keeps claiming jobs.
- **Restarts.** The parent restarts a worker that died, after a backoff that doubles with
  each quick death (0.5 s up to 30 s) and starts over once a worker has lived a minute.
- **Graceful stop.** SIGTERM to the service stops the workers with SIGTERM: each stops
  claiming, lets its phases finish or checkpoint within ``stop_grace`` and hands the jobs it
  still holds back to the queue (lease cleared), so another replica takes them at once. A
  worker that outstays that is killed, and its jobs wait out their lease.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from discovery_svc.adapters import cleansing_pool
from discovery_svc.phases import HANDLERS
from discovery_svc.service_layer.runner import PhaseRunner, RunnerSettings
from flowpair_shared import logs, tasks, tracing
from flowpair_shared.db import asyncpg_dsn, create_engine
from flowpair_shared.notify import Listener
from flowpair_shared.settings import Settings

log = logging.getLogger("flowpair.discovery.workers")

_BACKOFF_FIRST = 0.5
_BACKOFF_MAX = 30.0
_STEADY_SECONDS = 60.0
"""A worker that lived this long died of something new: its restart waits the first backoff."""
_WATCH_INTERVAL = 0.2


def runner_settings(settings: Settings, *, progressive: bool) -> RunnerSettings:
    """The phase runner's settings, in a worker (``progressive``) or on the serving loop."""
    return RunnerSettings(
        concurrency=settings.phase_concurrency,
        lease_seconds=settings.phase_lease_seconds,
        stop_grace=settings.phase_stop_grace_seconds,
        progressive=progressive,
        commit_rows=settings.phase_commit_rows,
        commit_seconds=settings.phase_commit_seconds,
    )


@dataclass
class _Slot:
    index: int
    process: BaseProcess | None = None
    parent_end: Connection | None = None
    started: float = 0.0
    backoff: float = _BACKOFF_FIRST
    restart_at: float | None = None


class PhaseWorkers:
    """The discovery service's worker processes (background work of the serving process)."""

    def __init__(self, settings: Settings, *, count: int) -> None:
        self._settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._slots = [_Slot(i) for i in range(count)]
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        """The live workers' process ids."""
        return [
            s.process.pid
            for s in self._slots
            if s.process is not None and s.process.pid is not None and s.process.is_alive()
        ]

    def start(self) -> None:
        self._stopping = False
        for slot in self._slots:
            self._spawn(slot)
        self._task = asyncio.create_task(self._watch(), name="phase-workers")

    def _spawn(self, slot: _Slot) -> None:
        read_end, write_end = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=run_worker,
            args=(self._settings, slot.index, read_end),
            name=f"phase-worker-{slot.index}",
            # Not a daemon: a daemon process may not start the cleansing pool. A worker still
            # goes with its service (the pipe it watches) and stop() joins it.
            daemon=False,
        )
        process.start()
        # Only the worker may hold the read end: the pipe reads end-of-file once the write
        # end, ours alone, is closed by our death.
        read_end.close()
        slot.process, slot.parent_end = process, write_end
        slot.started, slot.restart_at = time.monotonic(), None
        log.info("phase worker started", extra={"worker": slot.index, "pid": process.pid})

    async def _watch(self) -> None:
        while not self._stopping:
            await asyncio.sleep(_WATCH_INTERVAL)
            now = time.monotonic()
            for slot in self._slots:
                if slot.restart_at is not None:
                    if now >= slot.restart_at:
                        self._spawn(slot)
                    continue
                if slot.process is None or slot.process.is_alive():
                    continue
                if now - slot.started >= _STEADY_SECONDS:
                    slot.backoff = _BACKOFF_FIRST
                log.warning(
                    "phase worker died; restarting it",
                    extra={
                        "worker": slot.index,
                        "pid": slot.process.pid,
                        "exitcode": slot.process.exitcode,
                        "backoff": slot.backoff,
                    },
                )
                self._close(slot)
                slot.restart_at = now + slot.backoff
                slot.backoff = min(slot.backoff * 2, _BACKOFF_MAX)

    async def stop(self) -> None:
        """SIGTERM every worker, wait for them to hand their jobs back, kill stragglers."""
        self._stopping = True
        await tasks.cancelled(self._task)
        self._task = None
        running = [s.process for s in self._slots if s.process is not None]
        for process in running:
            if process.is_alive():
                process.terminate()
        # The workers' own grace, then time to release their jobs and close their pools.
        deadline = time.monotonic() + self._settings.phase_stop_grace_seconds + 5.0
        for process in running:
            await asyncio.to_thread(process.join, max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("phase worker did not stop in time; killing it")
                process.kill()
                await asyncio.to_thread(process.join)
        for slot in self._slots:
            self._close(slot)

    @staticmethod
    def _close(slot: _Slot) -> None:
        if slot.parent_end is not None:
            slot.parent_end.close()
            slot.parent_end = None
        if slot.process is not None and not slot.process.is_alive():
            slot.process.close()
            slot.process = None


def run_worker(settings: Settings, index: int, parent: Connection) -> None:
    """A worker process's entry point (spawned: it imports everything afresh)."""
    logs.configure("discovery")
    logs.bind(worker=index)
    # Spawned: nothing of the parent's tracing came along. The phases' spans are made here.
    tracing.setup("discovery")
    # Ctrl-C reaches the whole process group; the parent decides when its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        asyncio.run(_serve(settings, parent))
    finally:
        # multiprocessing joins a process's children as it exits, and a pool process only
        # leaves when its pool is shut down: without this an exiting worker waits forever.
        cleansing_pool.shutdown()
        tracing.shutdown()  # export the spans still buffered


async def _serve(settings: Settings, parent: Connection) -> None:
    engine = create_engine(
        settings.database_url,
        # The handlers' connections, lease renewals beside each, and the claim loop's.
        pool_size=2 * settings.phase_concurrency + 1,
        application_name="flowpair-discovery-worker",
        statement_timeout=settings.db_statement_timeout,
        idle_in_transaction_timeout=settings.db_idle_in_transaction_timeout,
        pool_timeout=settings.db_pool_timeout,
    )
    listener = Listener(asyncpg_dsn(settings.database_url))
    runner = PhaseRunner(
        engine,
        handlers=HANDLERS,
        # Phase events go through the outbox, whose insert notifies the parent's relay.
        after_commit=lambda: None,
        listener=listener,
        settings=runner_settings(settings, progressive=True),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def parent_gone() -> None:
        loop.remove_reader(parent.fileno())
        log.warning("the discovery service is gone; stopping")
        stop.set()

    loop.add_reader(parent.fileno(), parent_gone)
    listener.start()
    runner.start()
    log.info("phase worker serving")
    await stop.wait()
    log.info("phase worker stopping")
    await runner.stop()
    await listener.stop()
    await engine.dispose()
    log.info("phase worker stopped")
