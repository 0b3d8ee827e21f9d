"""Operator use cases: diagnose a flow, list and re-queue parked messages, and the repairs the
reconciler makes. Every read and write is scoped to the caller's tenant."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from flowpair.internal.v1 import child_flow_service_pb2 as child_pb2
from flowpair_shared import logs, pagination
from flowpair_shared.errors import NotFound
from flowpair_shared.outbox import store
from flowpair_shared.outbox.store import UndeliveredMessage
from flowpair_shared.settings import ReconcileSettings
from flowpair_shared.tenancy import Tenant
from orchestrator_svc.adapters import child_flows, repository
from orchestrator_svc.domain.diagnosis import (
    ChildAnswer,
    Finding,
    RequeueMessage,
    SendAgain,
    Thresholds,
    diagnose,
)
from orchestrator_svc.domain.model import HistoryEntry, MasterFlow
from orchestrator_svc.service_layer.handlers import Orchestrator

log = logging.getLogger("flowpair.operations")
_NOW = text("SELECT now()")


@dataclass(frozen=True)
class Diagnosis:
    flow: MasterFlow
    answer: ChildAnswer
    described: child_pb2.DescribeChildFlowResponse | None
    """The child and its jobs as discovery answered (None: it did not)."""
    messages: list[UndeliveredMessage]
    last_event: HistoryEntry | None
    findings: list[Finding]
    diagnose_time: datetime


@dataclass(frozen=True)
class ParkedPage:
    messages: list[UndeliveredMessage]
    next_page_token: str


@dataclass(frozen=True)
class Repaired:
    """What one reconciliation of a flow did, and what it left to a person."""

    done: list[str]
    left: list[Finding]


def _parked(m: UndeliveredMessage) -> tuple[datetime, uuid.UUID]:
    """A parked message's position in the oldest-parked-first list."""
    assert m.parked_at is not None  # listed as parked
    return m.parked_at, m.message_id


class Operations:
    def __init__(
        self,
        engine: AsyncEngine,
        orchestrator: Orchestrator,
        discovery: grpc.aio.Channel,
        settings: ReconcileSettings,
    ) -> None:
        self._engine = engine
        self._o = orchestrator
        self._discovery = discovery
        self._thresholds = Thresholds(
            quiet=timedelta(seconds=settings.quiet_seconds), max_requeues=settings.max_requeues
        )
        self._tokens = pagination.PageTokens(engine)

    @property
    def orchestrator(self) -> Orchestrator:
        return self._o

    async def diagnose(
        self, tenant: Tenant, flow_id: uuid.UUID, *, operator: bool = True
    ) -> Diagnosis:
        """The facts read from both services, and the findings they lead to.

        The child is asked before the flow and its messages are read: a phase event the child
        commits meanwhile is then in the messages or already applied to the flow, never missed
        by both (which would look like a stall). For an ``operator`` (DiagnoseFlow), an
        unknown flow is NOT_FOUND before discovery is asked, and the last event is read; the
        reconciler, which has just found the flow, needs neither."""
        logs.bind(flow_id=str(flow_id))
        if operator:
            await self._o.get_flow(tenant, flow_id)
        answer, described = await child_flows.describe(self._discovery, tenant, flow_id)
        async with self._engine.connect() as conn:
            flow = await repository.get(conn, tenant, flow_id)
            if flow is None:
                raise NotFound(f"flow flows/{flow_id} not found")
            messages = await store.of_key(conn, flow_id)
            last = (
                await repository.list_history(conn, flow_id, after=flow.history_seq - 1, limit=1)
                if operator
                else []
            )
            # Leases, update and creation times are the database's: judge them by its clock.
            now: datetime = (await conn.execute(_NOW)).scalar_one()
        if answer.code == "NOT_FOUND":
            # The child may have been created since it was asked for (its creation delivered
            # between the two reads, and reported): ask once more before calling it missing.
            again, described_again = await child_flows.describe(self._discovery, tenant, flow_id)
            if again.child is not None:
                answer, described = again, described_again
        return Diagnosis(
            flow=flow,
            answer=answer,
            described=described,
            messages=messages,
            last_event=last[0] if last else None,
            findings=diagnose(flow, answer, messages, now=now, thresholds=self._thresholds),
            diagnose_time=now,
        )

    async def list_parked(
        self,
        *,
        flow_id: uuid.UUID | None,
        destination: str | None,
        page_size: int,
        page_token: str,
    ) -> ParkedPage:
        size = pagination.page_size(page_size)
        query = f"parked:{flow_id or ''}:{destination or ''}"
        after = await self._tokens.decode(page_token, query)
        async with self._engine.connect() as conn:
            found = await store.list_parked(
                conn, ordering_key=flow_id, destination=destination, after=after, limit=size + 1
            )
        return ParkedPage(*await self._tokens.keyset_page(found, size, _parked, query))

    async def requeue(
        self,
        tenant: Tenant,
        *,
        message_id: uuid.UUID | None = None,
        flow_id: uuid.UUID | None = None,
        destination: str | None = None,
        reason: str = "",
    ) -> list[UndeliveredMessage]:
        """Re-queue the tenant's parked messages that match (all of them without a filter)."""
        async with self._engine.begin() as conn:
            requeued = await store.requeue_parked(
                conn, message_id=message_id, ordering_key=flow_id, destination=destination
            )
        if message_id is not None and not requeued:
            raise NotFound(f"no parked message messages/{message_id}")
        for m in requeued:
            log.info(
                "parked message re-queued",
                extra={
                    "flow_id": str(m.ordering_key),
                    "message_id": str(m.message_id),
                    "method": m.call,
                    "user_id": str(tenant.user_id),
                    "reason": reason,
                },
            )
        return requeued

    async def reconcile(self, tenant: Tenant, flow_id: uuid.UUID) -> Repaired:
        """Diagnose a quiet flow and make the repairs its findings name, under the flow's lock
        and only if the flow has not changed since it was diagnosed (a replica's reconciler,
        or the flow itself, may have moved it meanwhile)."""
        diagnosis = await self.diagnose(tenant, flow_id, operator=False)
        repairs = [f for f in diagnosis.findings if f.repair is not None]
        left = [f for f in diagnosis.findings if f.repair is None]
        if not repairs:
            return Repaired([], left)
        done: list[str] = []
        seen = diagnosis.flow.update_time

        def apply(flow: MasterFlow, requeued: list[UndeliveredMessage]) -> None:
            for m in requeued:
                # Not the message's last error: the history is a viewer's to read, the
                # outbox's errors an operator's (DiagnoseFlow).
                flow.reconciled(
                    f"re-queued parked message messages/{m.message_id} ({m.call} to"
                    f" {m.destination}, parked after {m.attempts} attempts)"
                )
                done.append(f"re-queued messages/{m.message_id}")
            for finding in repairs:
                if isinstance(finding.repair, SendAgain):
                    what = f"sent {type(finding.repair.command).__name__} again: {finding.detail}"
                    flow.reconciled(what, command=finding.repair.command)
                    done.append(what)

        ids = [f.repair.message_id for f in repairs if isinstance(f.repair, RequeueMessage)]
        changed = await self._o.repair(tenant, flow_id, seen=seen, requeue=ids, change=apply)
        return Repaired(done if changed else [], left)
