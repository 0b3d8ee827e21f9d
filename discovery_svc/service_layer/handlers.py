"""Use cases of the discovery service. Each runs in one unit of work."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from discovery_svc.adapters import messages, repository
from discovery_svc.domain.model import ChildFlow
from flowpair_shared import logs
from flowpair_shared.domain import FlowType
from flowpair_shared.errors import NotFound
from flowpair_shared.outbox import UnitOfWork, first_delivery
from flowpair_shared.tenancy import Tenant

SOURCE = "discovery"
log = logging.getLogger("flowpair.discovery")


@dataclass(frozen=True, kw_only=True)
class CreateChildFlow:
    master_flow_id: uuid.UUID
    flow_type: FlowType
    display_name: str


class Discovery:
    """The discovery service's use cases over one engine; ``after_commit`` wakes the relay."""

    def __init__(self, engine: AsyncEngine, *, after_commit: Callable[[], None]) -> None:
        self._engine = engine
        self._after_commit = after_commit

    async def create_child_flow(
        self, tenant: Tenant, cmd: CreateChildFlow, message_id: uuid.UUID | None
    ) -> ChildFlow:
        """Child flow + its INITIALIZATION event in one transaction; one child per master."""
        logs.bind(flow_id=str(cmd.master_flow_id))
        async with UnitOfWork(self._engine, source=SOURCE) as uow:
            fresh = message_id is None or await first_delivery(uow.conn, SOURCE, message_id)
            child = ChildFlow(
                id=uuid.uuid4(),
                master_flow_id=cmd.master_flow_id,
                client_account_id=tenant.client_account_id,
                engagement_id=tenant.engagement_id,
                create_user=tenant.user_id,
                flow_type=cmd.flow_type,
                display_name=cmd.display_name,
            )
            event = child.initialize()
            if not fresh or not await repository.insert(uow.conn, child):
                # Redelivered, or created before: the unique master id means one child, ever.
                existing = await repository.get_by_master(uow.conn, tenant, cmd.master_flow_id)
                if existing is None:
                    raise NotFound(f"flows/{cmd.master_flow_id} has no child flow for this tenant")
                await uow.commit()
                return existing
            await uow.outbox.add(messages.phase_status_event(event, tenant))
            await uow.commit()
        log.info("child flow created", extra={"child_flow_id": str(child.id)})
        self._after_commit()
        return child

    async def get_child_flow(
        self,
        tenant: Tenant,
        *,
        child_id: uuid.UUID | None = None,
        master_flow_id: uuid.UUID | None = None,
    ) -> ChildFlow:
        async with self._engine.connect() as conn:
            if child_id is not None:
                child = await repository.get(conn, tenant, child_id)
                what = f"childFlows/{child_id}"
            else:
                assert master_flow_id is not None
                child = await repository.get_by_master(conn, tenant, master_flow_id)
                what = f"child flow of flows/{master_flow_id}"
        if child is None:
            raise NotFound(f"{what} not found")
        logs.bind(flow_id=str(child.master_flow_id))
        return child
