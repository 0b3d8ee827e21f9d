"""The phase handler interface: small, typed, one module per phase.

A handler gets the child flow and an open transaction. It writes its output through that
transaction and returns how the phase ended; the runner records the phase's status and
event in the same transaction, so output and event commit together or not at all. Handlers
are idempotent: a re-run first replaces whatever an earlier run of the phase wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.adapters import imports, repository
from discovery_svc.domain.imports import ImportSummary
from discovery_svc.domain.model import ChildFlow
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
