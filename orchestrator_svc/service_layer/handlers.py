"""Use cases of the orchestrator. Each runs in one unit of work."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from flowpair_shared import logs, pagination
from flowpair_shared.domain import FlowStatus, FlowType
from flowpair_shared.errors import NotFound
from flowpair_shared.outbox import UnitOfWork, first_delivery
from flowpair_shared.tenancy import Tenant
from orchestrator_svc.adapters import messages, repository
from orchestrator_svc.domain.model import MasterFlow, PhaseEvent

SOURCE = "orchestrator"
log = logging.getLogger("flowpair.orchestrator")


@dataclass(frozen=True, kw_only=True)
class CreateFlow:
    flow_type: FlowType
    display_name: str
    auto_approve: bool
    request_id: uuid.UUID | None


@dataclass(frozen=True)
class Page:
    flows: list[MasterFlow]
    next_page_token: str


class Orchestrator:
    """The orchestrator's use cases over one engine; ``after_commit`` wakes the relay."""

    def __init__(self, engine: AsyncEngine, *, after_commit: Callable[[], None]) -> None:
        self._engine = engine
        self._after_commit = after_commit

    def _uow(self) -> UnitOfWork:
        return UnitOfWork(self._engine, source=SOURCE)

    async def create_flow(self, tenant: Tenant, cmd: CreateFlow) -> MasterFlow:
        """Master flow + create-child command in one transaction; idempotent by request id."""
        async with self._uow() as uow:
            if cmd.request_id is not None:
                existing = await repository.get_by_request_id(uow.conn, tenant, cmd.request_id)
                if existing is not None:
                    logs.bind(flow_id=str(existing.id))
                    return existing
            flow = MasterFlow(
                id=uuid.uuid4(),
                client_account_id=tenant.client_account_id,
                engagement_id=tenant.engagement_id,
                create_user=tenant.user_id,
                flow_type=cmd.flow_type,
                display_name=cmd.display_name,
                auto_approve=cmd.auto_approve,
                request_id=cmd.request_id,
            )
            if not await repository.insert(uow.conn, flow):
                # A concurrent call with the same request id committed first; the insert
                # waited for it, and this next statement's snapshot sees its flow.
                assert cmd.request_id is not None
                winner = await repository.get_by_request_id(uow.conn, tenant, cmd.request_id)
                assert winner is not None
                logs.bind(flow_id=str(winner.id))
                return winner
            await uow.outbox.add(messages.create_child_flow(flow, tenant))
            await uow.commit()
        logs.bind(flow_id=str(flow.id))
        log.info("flow created")
        self._after_commit()
        return flow

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
        after = pagination.decode(page_token, query)
        async with self._engine.connect() as conn:
            flows = await repository.list_page(
                conn, tenant, statuses=statuses, after=after, limit=size + 1
            )
        token = ""
        if len(flows) > size:
            flows = flows[:size]
            last = flows[-1]
            assert last.create_time is not None
            token = pagination.encode((last.create_time, last.id), query)
        return Page(flows, token)

    async def record_phase_status(
        self, tenant: Tenant, event: PhaseEvent, message_id: uuid.UUID | None
    ) -> bool:
        """Apply a child's phase event once; False for a redelivery."""
        logs.bind(flow_id=str(event.flow_id), event_sequence=event.sequence)
        async with self._uow() as uow:
            if message_id is not None and not await first_delivery(uow.conn, SOURCE, message_id):
                return False
            flow = await repository.get(uow.conn, tenant, event.flow_id, lock=True)
            if flow is None:
                raise NotFound(f"flow flows/{event.flow_id} not found")
            transition = flow.apply(event)
            if transition is not None:
                await repository.save_transition(uow.conn, flow, transition)
            await uow.commit()
        if transition is not None:
            log.info(
                "phase event applied",
                extra={
                    "phase": event.phase.name,
                    "phase_status": event.status.name,
                    "flow_status": flow.status.name,
                },
            )
        return transition is not None
