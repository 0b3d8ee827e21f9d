"""The phase handler interface: small, typed, one module per phase.

A handler gets the child flow and an open transaction. It writes its output through that
transaction and returns how the phase ended; the runner records the phase's status and
event in the same transaction, so output and event commit together or not at all. Handlers
are idempotent: a re-run first replaces whatever an earlier run of the phase wrote.

A phase over every row of a large import is a ``ResumablePhaseHandler`` instead: it works in
pages and reports each page's ``Cursor`` to its ``Checkpointing``. In a worker process that
is ``Checkpoints``, which commits the work so far every so many rows or seconds, together
with the cursor and under the job's lease fence, so no transaction grows with the import and
a run taken over after a crash resumes at the last commit. In-process it is
``NoCheckpoints``: one transaction, as for every other phase.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.adapters import imports, jobs, repository
from discovery_svc.domain.imports import ImportSummary
from discovery_svc.domain.model import ChildFlow
from flowpair_shared.db import lift_timeouts
from flowpair_shared.domain import Phase, PhaseStatus


@dataclass(frozen=True)
class PhaseOutcome:
    """How a phase ended when it did not fail."""

    status: PhaseStatus
    """COMPLETED, or WAITING_FOR_APPROVAL for a phase whose output a person must approve."""
    summary: str = ""


class PhaseFailed(Exception):
    """The phase cannot complete; ``reason`` is a stable code, the message is for people."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class PhaseHandler(Protocol):
    """What the runner needs from a phase."""

    phase: ClassVar[Phase]
    timeout: ClassVar[float]
    """Seconds the phase may take before it fails with reason PHASE_TIMEOUT."""

    async def run(self, child: ChildFlow, conn: AsyncConnection) -> PhaseOutcome: ...


@dataclass(frozen=True)
class Cursor:
    """How far a progressive phase got: every row up to ``after_row`` is done, and with it
    ``rows`` rows and ``issues`` issues so far (what its summary counts)."""

    after_row: int = 0
    rows: int = 0
    issues: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Cursor:
        return cls(int(value["after_row"]), int(value["rows"]), int(value["issues"]))


class Stopping(Exception):
    """The runner is shutting down: the work up to here is committed, the job goes back to
    the queue and resumes from its cursor elsewhere."""


class Checkpointing(Protocol):
    """Where a resumable phase reports its progress."""

    @property
    def resume_from(self) -> Cursor | None:
        """The cursor an earlier attempt committed; None: start afresh."""
        ...

    async def reached(self, conn: AsyncConnection, cursor: Cursor, rows: int) -> None:
        """``rows`` more rows are written in ``conn``'s transaction, up to ``cursor``."""
        ...

    async def settle(self, conn: AsyncConnection) -> None:
        """The handler returned: make what it wrote since the last commit durable."""
        ...


class NoCheckpoints:
    """One transaction for the whole phase, committed by the runner with its outcome."""

    resume_from: Cursor | None = None

    async def reached(self, conn: AsyncConnection, cursor: Cursor, rows: int) -> None:
        return None

    async def settle(self, conn: AsyncConnection) -> None:
        return None


class Checkpoints:
    """Commits a resumable phase's work every ``every_rows`` rows or ``every_seconds``
    seconds, with its cursor in the job's ``progress``, fenced by the job's lease token: a
    runner that lost its lease gets ``jobs.LeaseLost`` and its transaction rolls back."""

    def __init__(
        self,
        job: jobs.Job,
        *,
        every_rows: int,
        every_seconds: float,
        lease_seconds: float,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self._job = job
        self._every_rows = every_rows
        self._every_seconds = every_seconds
        self._lease_seconds = lease_seconds
        self._stopping = stopping
        self._cursor = Cursor.from_json(job.progress) if job.progress else None
        self.resume_from = self._cursor
        self._pending = 0
        self._since = time.monotonic()
        self.commits = 0
        """Commits made so far (a test reads it)."""

    async def reached(self, conn: AsyncConnection, cursor: Cursor, rows: int) -> None:
        self._cursor = cursor
        self._pending += rows
        stopping = self._stopping()
        due = (
            self._pending >= self._every_rows
            or time.monotonic() - self._since >= self._every_seconds
        )
        if due or stopping:
            await self._commit(conn, cursor)
        if stopping:
            raise Stopping(f"stopped after row {cursor.after_row}")

    async def settle(self, conn: AsyncConnection) -> None:
        await self._commit(conn, self._cursor or Cursor())

    async def _commit(self, conn: AsyncConnection, cursor: Cursor) -> None:
        await jobs.checkpoint(conn, self._job, cursor.to_json(), self._lease_seconds)
        await conn.commit()
        # The next transaction begins at the next statement; a phase's own timeout and lease
        # bound it, not the service's statement timeouts.
        await lift_timeouts(conn)
        self.commits += 1
        self._pending = 0
        self._since = time.monotonic()


@runtime_checkable
class ResumablePhaseHandler(PhaseHandler, Protocol):
    """A phase that can commit progressively and resume where an earlier attempt stopped.

    ``run`` is ``run_resumable`` with ``NoCheckpoints``. A run with nothing to resume from
    first replaces whatever an earlier run wrote; one that resumes keeps what is committed
    and carries on after ``resume_from``."""

    async def run_resumable(
        self, child: ChildFlow, conn: AsyncConnection, checkpoints: Checkpointing
    ) -> PhaseOutcome: ...


async def flow_import(conn: AsyncConnection, child: ChildFlow) -> ImportSummary:
    """The import the flow was created on; the phase fails if it is missing."""
    if child.import_id is None:
        raise PhaseFailed("IMPORT_MISSING", "the flow was created without an import")
    found = await imports.get(conn, repository.tenant_of(child), child.import_id)
    if found is None:
        raise PhaseFailed(
            "IMPORT_NOT_FOUND",
            f"imports/{child.import_id} was not found for this engagement; upload it with"
            f" UploadImportData (metadata.import_id = {child.import_id}), then RetryPhase",
        )
    return found
