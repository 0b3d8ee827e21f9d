"""Use cases of the orchestrator. Each runs in one unit of work."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowpair_shared import logs, pagination
from flowpair_shared.domain import FlowStatus, FlowType, IdentityKey, Phase
from flowpair_shared.errors import FailedPrecondition, NotFound
from flowpair_shared.outbox import UnitOfWork, store
from flowpair_shared.outbox.store import OutboxRows, UndeliveredMessage
from flowpair_shared.tenancy import Tenant
from orchestrator_svc.adapters import flow_metrics, messages, repository
from orchestrator_svc.adapters.watchers import FlowWatchers
from orchestrator_svc.domain.model import Actor, HistoryEntry, MasterFlow, PhaseEvent

SOURCE = "orchestrator"
HISTORY_PAGE = 500
log = logging.getLogger("flowpair.orchestrator")


@dataclass(frozen=True, kw_only=True)
class CreateFlow:
    flow_type: FlowType
    display_name: str
    auto_approve: bool
    import_id: uuid.UUID | None
    allow_concurrent: bool
    request_id: uuid.UUID | None
    mapping_confidence_threshold: float = 0.85
    identity_key: IdentityKey = IdentityKey.HOST_THEN_NAME


@dataclass(frozen=True)
class Page:
    flows: list[MasterFlow]
    next_page_token: str


@dataclass(frozen=True)
class HistoryPage:
    entries: list[HistoryEntry]
    next_page_token: str


def _created(flow: MasterFlow) -> tuple[datetime, uuid.UUID]:
    """A flow's position in the newest-first list."""
    assert flow.create_time is not None  # read from the database
    return flow.create_time, flow.id


def _flow_tenant(flow: MasterFlow, user: uuid.UUID) -> Tenant:
    return Tenant(flow.client_account_id, flow.engagement_id, user)


def _incomplete_flow_exists(other: uuid.UUID, advice: str) -> FailedPrecondition:
    """An exclusive flow may not be created (or retried) beside the engagement's ``other``."""
    return FailedPrecondition(
        f"the engagement already has an incomplete discovery flow, flows/{other}; {advice}",
        reason="INCOMPLETE_FLOW_EXISTS",
        subject=f"flows/{other}",
    )


class Orchestrator:
    """The orchestrator's use cases over one engine; ``after_commit`` wakes the relay."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        after_commit: Callable[[], None],
        watchers: FlowWatchers,
        watch_recheck: float = 5.0,
    ) -> None:
        self._engine = engine
        self._after_commit = after_commit
        self._watchers = watchers
        self._tokens = pagination.PageTokens(engine)
        self._watch_recheck = watch_recheck

    def _uow(self) -> UnitOfWork:
        return UnitOfWork(self._engine, source=SOURCE)

    async def _commit(self, uow: UnitOfWork, flow: MasterFlow, user: uuid.UUID) -> bool:
        """Save the flow's change and commit; False (nothing written) when it changed nothing."""
        if not flow.new_history:
            return False
        await self._save(uow, flow, user)
        await uow.commit()
        return True

    async def _save(self, uow: UnitOfWork, flow: MasterFlow, user: uuid.UUID) -> None:
        """State, history and the flow's commands to discovery: one statement."""
        tenant = _flow_tenant(flow, user)
        commands = [messages.command(flow, tenant, cmd) for cmd in flow.commands]
        await repository.save(uow.conn, flow, OutboxRows.of(uow.source, flow.id, commands))
        flow.commands.clear()

    # -- create and read -------------------------------------------------------------------

    async def create_flow(self, tenant: Tenant, cmd: CreateFlow) -> MasterFlow:
        """Master flow + create-child command in one transaction; idempotent by request id."""
        exclusive = cmd.flow_type == FlowType.DISCOVERY and not cmd.allow_concurrent
        flow = MasterFlow(
            id=uuid.uuid4(),
            client_account_id=tenant.client_account_id,
            engagement_id=tenant.engagement_id,
            create_user=tenant.user_id,
            flow_type=cmd.flow_type,
            display_name=cmd.display_name,
            auto_approve=cmd.auto_approve,
            import_id=cmd.import_id,
            request_id=cmd.request_id,
            mapping_confidence_threshold=cmd.mapping_confidence_threshold,
            identity_key=cmd.identity_key,
        )
        flow.created()
        command = OutboxRows.of(SOURCE, flow.id, [messages.create_child_flow(flow, tenant)])
        async with self._uow() as uow:
            if exclusive:
                # The engagement's lock before the request-id lookup: a concurrent retry of
                # this very request that holds it has committed its flow once we get it, and
                # the lookup (a later statement, a fresh snapshot) finds that flow instead of
                # refusing it as the engagement's other incomplete flow.
                await repository.lock_engagement(uow.conn, tenant)
            # The request-id lookup, the engagement's other flow and the insert: one statement.
            outcome = await repository.create(uow.conn, flow, command, exclusive=exclusive)
            if outcome.existing is not None:
                return await self._existing(uow, tenant, outcome.existing)
            if outcome.other is not None:
                raise _incomplete_flow_exists(
                    outcome.other, "finish or cancel it, or set allow_concurrent"
                )
            if not outcome.created:
                # A concurrent call with the same request id committed first; the insert
                # waited for it, and this next statement's snapshot sees its flow.
                assert cmd.request_id is not None
                winner = await repository.get_by_request_id(uow.conn, tenant, cmd.request_id)
                assert winner is not None
                logs.bind(flow_id=str(winner.id))
                return winner
            await uow.commit()
        logs.bind(flow_id=str(flow.id))
        log.info("flow created")
        self._after_commit()
        return flow

    async def _existing(self, uow: UnitOfWork, tenant: Tenant, flow_id: uuid.UUID) -> MasterFlow:
        """The flow an earlier call with the same request id created."""
        existing = await repository.get(uow.conn, tenant, flow_id)
        assert existing is not None
        logs.bind(flow_id=str(existing.id))
        return existing

    async def get_flow(self, tenant: Tenant, flow_id: uuid.UUID) -> MasterFlow:
        logs.bind(flow_id=str(flow_id))
        async with self._engine.connect() as conn:
            flow = await repository.get(conn, tenant, flow_id)
        if flow is None:
            raise NotFound(f"flow flows/{flow_id} not found")
        return flow

    async def list_flows(
        self,
        tenant: Tenant,
        *,
        statuses: Sequence[FlowStatus],
        query: str,
        page_size: int,
        page_token: str,
    ) -> Page:
        size = pagination.page_size(page_size)
        after = await self._tokens.decode(page_token, query)
        async with self._engine.connect() as conn:
            flows = await repository.list_page(
                conn, tenant, statuses=statuses, after=after, limit=size + 1
            )
        return Page(*await self._tokens.keyset_page(flows, size, _created, query))

    # -- lifecycle -------------------------------------------------------------------------

    async def _change(
        self,
        tenant: Tenant,
        flow_id: uuid.UUID,
        change: Callable[[MasterFlow], None],
        *,
        read: Callable[[AsyncConnection], Awaitable[MasterFlow | None]] | None = None,
    ) -> MasterFlow:
        """Lock and read the flow (``read``, by default ``repository.get``), ``change`` it and
        save it, in one unit of work."""
        logs.bind(flow_id=str(flow_id))
        read = read or (lambda conn: repository.get(conn, tenant, flow_id, lock=True))
        async with self._uow() as uow:
            flow = await read(uow.conn)
            if flow is None:
                raise NotFound(f"flow flows/{flow_id} not found")
            change(flow)
            if not await self._commit(uow, flow, tenant.user_id):
                return flow  # a no-op (a resume of a running flow): nothing to write
        self._after_commit()
        log.info("flow changed", extra={"flow_status": flow.status.name})
        return flow

    async def pause(self, tenant: Tenant, flow_id: uuid.UUID, reason: str) -> MasterFlow:
        return await self._change(tenant, flow_id, lambda f: f.pause(Actor(tenant.user_id, reason)))

    async def resume(self, tenant: Tenant, flow_id: uuid.UUID, reason: str) -> MasterFlow:
        # Never waits. A client may approve on discovery and at once resume here, before the
        # approval's event has arrived: read discovery's undelivered events for the flow
        # first, then the flow. The approval committed before this call, so it is either
        # among them (the flow moves on by itself when it is applied: nothing to do) or
        # already applied to the flow read next.
        async with self._engine.connect() as conn:
            arriving = await messages.arriving_events(conn, flow_id)
        return await self._change(
            tenant, flow_id, lambda f: f.resume(Actor(tenant.user_id, reason), arriving=arriving)
        )

    async def cancel(self, tenant: Tenant, flow_id: uuid.UUID, reason: str) -> MasterFlow:
        return await self._change(
            tenant, flow_id, lambda f: f.cancel(Actor(tenant.user_id, reason))
        )

    async def retry(
        self, tenant: Tenant, flow_id: uuid.UUID, phase: Phase, reason: str
    ) -> MasterFlow:
        def change(flow: MasterFlow) -> None:
            flow.retry(phase, Actor(tenant.user_id, reason))

        if phase != Phase.DATA_IMPORT:
            return await self._change(tenant, flow_id, change)

        async def read(conn: AsyncConnection) -> MasterFlow | None:
            # A flow FAILED in DATA_IMPORT does not count as its engagement's incomplete flow
            # (an exclusive CreateFlow may run beside it); a retry makes it count again. So a
            # flow created exclusive is retried only if the engagement has no other incomplete
            # flow, checked as an exclusive CreateFlow checks, under the same lock: taken
            # before the flow's row (no path takes them the other way round), and the read
            # after it sees every create and retry that held it before.
            await repository.lock_engagement(conn, tenant)
            found = await repository.get_for_retry(conn, tenant, flow_id)
            if found is None:
                return None
            flow, other = found
            if (
                other is not None
                and flow.status == FlowStatus.FAILED
                and flow.current_phase == Phase.DATA_IMPORT
            ):
                raise _incomplete_flow_exists(
                    other,
                    f"finish or cancel it before retrying flows/{flow.id}, which was created"
                    " without allow_concurrent",
                )
            return flow

        return await self._change(tenant, flow_id, change, read=read)

    async def repair(
        self,
        tenant: Tenant,
        flow_id: uuid.UUID,
        *,
        seen: datetime | None,
        requeue: Sequence[uuid.UUID],
        change: Callable[[MasterFlow, list[UndeliveredMessage]], None],
    ) -> bool:
        """The reconciler's repair of a flow, in one transaction: the flow locked, and only if
        it has not changed since ``seen``; the parked messages ``requeue`` names re-queued;
        ``change`` records them and any command sent again. False: nothing was done."""
        logs.bind(flow_id=str(flow_id))
        async with self._uow() as uow:
            flow = await repository.get(uow.conn, tenant, flow_id, lock=True)
            if flow is None or flow.update_time != seen:
                return False
            requeued: list[UndeliveredMessage] = []
            for message_id in requeue:
                requeued += await store.requeue_parked(uow.conn, message_id=message_id)
            change(flow, requeued)
            if not await self._commit(uow, flow, tenant.user_id):
                return False
        self._after_commit()
        log.info("flow repaired", extra={"flow_status": flow.status.name})
        return True

    # -- phase events from the child -------------------------------------------------------

    async def record_phase_status(
        self, tenant: Tenant, event: PhaseEvent, message_id: uuid.UUID | None
    ) -> bool:
        """Apply a child's phase event once, and command what follows; False for a redelivery."""
        logs.bind(flow_id=str(event.flow_id), event_sequence=event.sequence)
        async with self._uow() as uow:
            found = await repository.get_for_message(
                uow.conn, tenant, event.flow_id, uow.source, message_id
            )
            if found is None:
                raise NotFound(f"flow flows/{event.flow_id} not found")
            fresh, flow = found
            if not fresh:
                return False
            before = replace(flow.phases[event.phase])
            entry = flow.apply(event)
            if entry is not None:
                await self._save(uow, flow, flow.create_user)
            await uow.commit()
        if entry is None:
            return False
        flow_metrics.phase_outcome(before, event)
        self._after_commit()
        log.info(
            "phase event applied",
            extra={
                "phase": event.phase.name,
                "phase_status": event.status.name,
                "flow_status": flow.status.name,
            },
        )
        return True

    # -- history ---------------------------------------------------------------------------

    async def list_history(
        self, tenant: Tenant, flow_id: uuid.UUID, *, page_size: int, page_token: str
    ) -> HistoryPage:
        await self.get_flow(tenant, flow_id)
        size = pagination.page_size(page_size, default=100)
        after = await self._tokens.decode_offset(page_token, str(flow_id))
        async with self._engine.connect() as conn:
            entries = await repository.list_history(conn, flow_id, after=after, limit=size + 1)
        token = ""
        if len(entries) > size:
            entries = entries[:size]
            token = await self._tokens.encode_offset(entries[-1].sequence, str(flow_id))
        return HistoryPage(entries, token)

    async def watch(
        self, tenant: Tenant, flow_id: uuid.UUID, after: int, *, follow_retries: bool = False
    ) -> AsyncIterator[HistoryEntry]:
        """Every entry after ``after``, then each new one; ends once the flow is terminal, or
        FAILED unless ``follow_retries`` (only a retry would continue it)."""
        await self.get_flow(tenant, flow_id)
        with self._watchers.watch(flow_id) as woken:
            while True:
                woken.clear()
                async with self._engine.connect() as conn:
                    # Status first: entries committed before it was read are all visible to
                    # the next query, so a terminal status means the history is complete.
                    status = await repository.status_of(conn, flow_id)
                    entries = await repository.list_history(
                        conn, flow_id, after=after, limit=HISTORY_PAGE
                    )
                for entry in entries:
                    yield entry
                    after = entry.sequence
                if len(entries) == HISTORY_PAGE:
                    continue
                if status is None:
                    return
                # The last entry read, not the status read before it, says where the flow is
                # now: a retry committed between the two reads is in `entries` (FAILED is not
                # terminal), and a terminal status is in the history as the last entry.
                now = entries[-1].flow_status if entries else status
                if now.is_terminal or (now == FlowStatus.FAILED and not follow_retries):
                    return
                try:
                    async with asyncio.timeout(self._watch_recheck):
                        await woken.wait()
                except TimeoutError:
                    pass
