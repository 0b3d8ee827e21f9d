"""The phase runner: takes queued phase jobs and runs their handlers.

Jobs live in PostgreSQL, so work survives a crash: a job whose process died is taken over
when its lease expires (the lease is renewed while the handler runs). A job that keeps
killing its process fails after ``max_attempts`` instead of looping forever.

The database going away is not the phase's fault: a run interrupted by an outage (or by a
serialization conflict) is never recorded as a phase failure. Its job goes back to the queue
at once when the database answers again, else its lease expires and it is taken over as after
a crash; either way the attempt counts, so a phase that itself brings the database down still
ends after ``max_attempts``. The loop keeps polling through an outage and resumes when the
database is back.

Every write for a job is fenced by the lease token of its claim (``jobs``): a runner whose
job was taken over cannot record an outcome, renew the lease or commit a checkpoint. With
``progressive`` (the worker processes), a resumable phase commits its output as it goes
(``phases.base.Checkpoints``) and a taken-over job resumes at its last commit. Stopping gives
running jobs ``stop_grace`` seconds to finish or checkpoint, then hands every job still held
back to the queue at once, so another runner picks it up without waiting out the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from discovery_svc.adapters import jobs, repository
from discovery_svc.adapters.jobs import Job
from discovery_svc.domain.model import PhaseFailure
from discovery_svc.phases.base import (
    Checkpoints,
    PhaseFailed,
    PhaseHandler,
    PhaseOutcome,
    ResumablePhaseHandler,
    Stopping,
)
from discovery_svc.service_layer.handlers import SOURCE, emit
from flowpair_shared import db_scope, logs, tasks, tracing
from flowpair_shared.db import lift_timeouts
from flowpair_shared.dbfailures import classify
from flowpair_shared.domain import Phase, PhaseStatus
from flowpair_shared.notify import Listener
from flowpair_shared.outbox import UnitOfWork

log = logging.getLogger("flowpair.discovery.runner")


@dataclass(frozen=True, kw_only=True)
class RunnerSettings:
    concurrency: int = 4
    """Phase jobs run at once by one process."""
    lease_seconds: float = 30.0
    """A job not renewed for this long is taken over by another runner."""
    poll_interval: float = 5.0
    """Fallback poll when no notification arrives."""
    max_attempts: int = 3
    """Runs of one job (crashes included) before it fails as PHASE_CRASHED."""
    stop_grace: float = 0.0
    """Stopping: seconds running jobs get to finish or checkpoint before they are handed
    back to the queue."""
    progressive: bool = False
    """Resumable phases commit progressively (worker processes; in-process: one
    transaction per phase, as every other phase)."""
    commit_rows: int = 50_000
    """Progressive phases commit after this many rows..."""
    commit_seconds: float = 30.0
    """...or this many seconds, whichever comes first."""


class _Interrupted(Exception):
    """The database, not the phase, ended a handler's run."""


class PhaseRunner:
    """Background work of the discovery service: runs phase jobs."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        handlers: Mapping[Phase, PhaseHandler],
        after_commit: Callable[[], None],
        listener: Listener | None,
        settings: RunnerSettings = RunnerSettings(),
    ) -> None:
        self._engine = engine
        self._handlers = handlers
        self._after_commit = after_commit
        self._settings = settings
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._held: dict[int, Job] = {}
        if listener is not None:
            listener.subscribe(jobs.JOBS_CHANNEL, lambda _payload: self.kick())

    def kick(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name="phase-runner")

    async def stop(self) -> None:
        """Stop taking jobs; give jobs in flight the grace to finish or checkpoint, then hand
        those still held back to the queue."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._running and self._settings.stop_grace > 0:
            await asyncio.wait(set(self._running), timeout=self._settings.stop_grace)
        held = list(self._held.values())
        await tasks.cancelled(*self._running)
        for job in held:
            await self._release(job, counts=False)

    async def _loop(self) -> None:
        with db_scope.system():  # jobs of every tenant are claimed here
            await self._claim_loop()

    async def _claim_loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            free = self._settings.concurrency - len(self._running)
            claimed: list[Job] = []
            if free > 0:
                try:
                    async with self._engine.begin() as conn:
                        claimed = await jobs.claim(
                            conn, limit=free, lease_seconds=self._settings.lease_seconds
                        )
                except Exception as error:
                    if classify(error) is None:
                        log.exception("claiming phase jobs failed")
                    else:
                        log.warning("claiming phase jobs failed: %r", error)
            for job in claimed:
                self._held[job.id] = job
                # A fresh context: the job runs in its own tenant's scope, never in this loop's.
                task = asyncio.create_task(
                    self._execute(job), name=f"phase-{job.id}", context=contextvars.Context()
                )
                self._running.add(task)
                task.add_done_callback(self._finished)
            if claimed and len(claimed) == free:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.poll_interval):
                    await self._wake.wait()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._wake.set()  # a slot is free

    async def _execute(self, job: Job) -> None:
        # Every transaction of the job (handler, lease renewals, failure) sees only the job's
        # tenant: a handler's unscoped query cannot touch another tenant's rows.
        # The run continues the trace of the call that queued the job; the events its phase
        # writes carry the run's span onward.
        try:
            with (
                db_scope.tenant(job),
                tracing.phase_job(
                    job.phase.name, job.trace_context, job_id=job.id, attempt=job.attempts
                ),
            ):
                await self._execute_scoped(job)
        finally:
            self._held.pop(job.id, None)

    async def _execute_scoped(self, job: Job) -> None:
        logs.reset()
        logs.bind(job_id=job.id, phase=job.phase.name)
        handler = self._handlers.get(job.phase)
        log.info(
            "phase job started",
            extra={"attempt": job.attempts, "resume_from": job.progress, "pid": os.getpid()},
        )
        heartbeat = asyncio.create_task(self._heartbeat(job, asyncio.current_task()))
        started = time.perf_counter()
        try:
            failure: PhaseFailure | None
            if job.attempts > self._settings.max_attempts:
                failure = PhaseFailure(
                    "PHASE_CRASHED",
                    f"{job.phase.name} was started {job.attempts - 1} times and never finished",
                )
            elif handler is None:
                failure = PhaseFailure("NOT_IMPLEMENTED", f"{job.phase.name} has no handler yet")
            else:
                failure = await self._run_handler(job, handler)
            if failure is not None:
                await self._record_failure(job, failure)
        except jobs.LeaseLost:
            log.warning("phase job lost its lease; its uncommitted work is discarded")
        except Stopping:
            log.info("phase job checkpointed for shutdown; handing it back")
            await self._release(job, counts=False)
        except Exception as error:
            if classify(error) is None:
                log.exception("phase job ended unexpectedly")
            else:
                log.warning("phase job interrupted by the database: %r", error)
                await self._release(job)
        finally:
            await tasks.cancelled(heartbeat)
            log.info(
                "phase job ended",
                extra={"ms": round((time.perf_counter() - started) * 1e3), "pid": os.getpid()},
            )

    async def _run_handler(self, job: Job, handler: PhaseHandler) -> PhaseFailure | None:
        """Run the handler and record its outcome with its output; the failure if it failed."""
        limit: asyncio.Timeout | None = None
        try:
            outcome: PhaseOutcome | None
            if self._settings.progressive and isinstance(handler, ResumablePhaseHandler):
                async with self._engine.connect() as conn:
                    await lift_timeouts(conn)
                    child = await repository.get_for_job(conn, job.child_flow_id, lock=False)
                    if child is None:
                        return None
                    logs.bind(flow_id=str(child.master_flow_id))
                    checkpoints = Checkpoints(
                        job,
                        every_rows=self._settings.commit_rows,
                        every_seconds=self._settings.commit_seconds,
                        lease_seconds=self._settings.lease_seconds,
                        stopping=lambda: self._stopping,
                    )
                    async with asyncio.timeout(handler.timeout) as limit:
                        outcome = await handler.run_resumable(child, conn, checkpoints)
                        await checkpoints.settle(conn)
                # The output is committed; its outcome follows in a short transaction (after
                # a crash in between, the resumed run finds nothing left and ends at once).
                outcome = await self._record_outcome(job, outcome, output=None)
            else:
                async with UnitOfWork(self._engine, source=SOURCE) as uow:
                    # A phase may run long statements and compute long between them: its own
                    # timeout and lease bound it, not the service's statement timeouts.
                    await lift_timeouts(uow.conn)
                    child = await repository.get_for_job(uow.conn, job.child_flow_id, lock=False)
                    if child is None:
                        return None
                    logs.bind(flow_id=str(child.master_flow_id))
                    async with asyncio.timeout(handler.timeout) as limit:
                        outcome = await handler.run(child, uow.conn)
                    outcome = await self._record_outcome(job, outcome, output=uow)
            if outcome is None:
                return None
        except PhaseFailed as error:
            return PhaseFailure(error.reason, error.message)
        except (jobs.LeaseLost, Stopping):
            raise
        except TimeoutError as error:
            if limit is None or not limit.expired():  # connecting timed out, not the phase
                raise _Interrupted(job.phase.name) from error
            return PhaseFailure(
                "PHASE_TIMEOUT", f"{job.phase.name} took longer than {handler.timeout:g} s"
            )
        except Exception as error:
            if classify(error) is not None:
                raise _Interrupted(job.phase.name) from error
            # The client sees this message: the exception (driver errors quote SQL and class
            # names) goes to the log only, with the flow id bound to the record.
            log.exception("phase handler crashed")
            return PhaseFailure(
                "PHASE_ERROR",
                f"{job.phase.name} failed unexpectedly; the discovery service's log has the cause",
            )
        log.info(
            "phase finished",
            extra={
                "phase_status": outcome.status.name,
                "summary": outcome.summary,
                "pid": os.getpid(),
            },
        )
        self._after_commit()
        return None

    async def _record_outcome(
        self, job: Job, outcome: PhaseOutcome, *, output: UnitOfWork | None
    ) -> PhaseOutcome | None:
        """Finish the job and record the phase's outcome, in ``output`` (the handler's own
        transaction) or a transaction of its own; None if the result is discarded."""
        if output is None:
            async with UnitOfWork(self._engine, source=SOURCE) as uow:
                return await self._record_outcome(job, outcome, output=uow)
        uow = output
        # Only now lock the child: a cancel must not wait for a long handler.
        child = await repository.get_for_job(uow.conn, job.child_flow_id, lock=True)
        if child is None or not await jobs.finish(uow.conn, job):
            log.info("phase result discarded: job cancelled or taken over")
            return None
        if not child.can_finish(job.phase):
            return None
        child.set_phase(job.phase, outcome.status)
        await emit(uow, child)
        await uow.commit()
        return outcome

    async def _release(self, job: Job, *, counts: bool = True) -> None:
        """Requeue an interrupted job if the database answers now; if it does not, the lease
        expires and the job is taken over later."""
        try:
            with db_scope.tenant(job):
                async with self._engine.begin() as conn:
                    released = await jobs.release(conn, job, counts=counts)
        except Exception as error:
            log.info("interrupted job left to its lease: %r", error)
            return
        if released:
            log.info("interrupted job requeued", extra={"job_id": job.id})

    async def _record_failure(self, job: Job, failure: PhaseFailure) -> None:
        async with UnitOfWork(self._engine, source=SOURCE) as uow:
            child = await repository.get_for_job(uow.conn, job.child_flow_id, lock=True)
            if child is None or not await jobs.finish(uow.conn, job):
                return
            if child.can_finish(job.phase):
                child.set_phase(job.phase, PhaseStatus.FAILED, failure)
                await emit(uow, child)
            await uow.commit()
        tracing.failed(failure.reason, failure.message)
        log.warning("phase failed", extra={"reason": failure.reason, "error": failure.message})
        self._after_commit()

    async def _heartbeat(self, job: Job, worker: asyncio.Task[None] | None) -> None:
        interval = self._settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with self._engine.begin() as conn:
                    ours = await jobs.extend_lease(conn, job, self._settings.lease_seconds)
            except Exception:
                log.warning("lease renewal failed", exc_info=True)
                continue
            if not ours and worker is not None:
                log.warning("phase job lost its lease (cancelled or taken over); stopping it")
                worker.cancel()
                return
