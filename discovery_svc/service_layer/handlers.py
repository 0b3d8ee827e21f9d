"""Use cases of the discovery service. Each runs in one unit of work."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from discovery_svc.adapters import (
    assets,
    findings,
    imports,
    jobs,
    mappings,
    messages,
    profiles,
    repository,
)
from discovery_svc.domain.findings import (
    SUMMARISED,
    DataIssue,
    IssueFilter,
    IssueKind,
    PhaseSummary,
    columns_by_attribute,
    kinds_of,
)
from discovery_svc.domain.imports import ImportSummary
from discovery_svc.domain.inventory import Asset, Dependency
from discovery_svc.domain.mapping_set import MappingSet, Update
from discovery_svc.domain.model import ChildFlow
from discovery_svc.domain.profile import DataProfile, Severity
from discovery_svc.service_layer import uploads
from discovery_svc.service_layer.uploads import UploadRequest
from flowpair_shared import logs, pagination
from flowpair_shared.domain import FlowType, IdentityKey, Phase, PhaseStatus
from flowpair_shared.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from flowpair_shared.outbox import UnitOfWork
from flowpair_shared.outbox.store import OutboxRows
from flowpair_shared.tenancy import Tenant

SOURCE = "discovery"
log = logging.getLogger("flowpair.discovery")


@dataclass(frozen=True, kw_only=True)
class CreateChildFlow:
    master_flow_id: uuid.UUID
    flow_type: FlowType
    display_name: str
    import_id: uuid.UUID | None
    auto_approve: bool = False
    confidence_threshold: float = 0.85
    identity_key: IdentityKey = IdentityKey.HOST_THEN_NAME


def _events(uow: UnitOfWork, child: ChildFlow) -> OutboxRows:
    """The child's new phase events, as messages to the orchestrator."""
    tenant = repository.tenant_of(child)
    events = [messages.phase_status_event(e, tenant) for e in child.events]
    return OutboxRows.of(uow.source, child.master_flow_id, events)


async def emit(uow: UnitOfWork, child: ChildFlow) -> None:
    """Persist the child and send its new phase events to the orchestrator: one statement."""
    await repository.save(uow.conn, child, _events(uow, child))
    child.events.clear()


def _asset_bytes(a: Asset) -> int:
    """About what an asset takes in a response (its text, its attributes, framing)."""
    text = sum(len(v.encode()) for v in vars(a).values() if isinstance(v, str))
    return 200 + text + len(json.dumps(a.attributes)) + 60 * len(a.source_rows)


def _issue_bytes(i: DataIssue) -> int:
    return 200 + len(i.attribute.encode()) + len(i.value.encode()) + len(i.problem.encode())


def _dependency_bytes(d: Dependency) -> int:
    return 200 + len(d.source_name.encode()) + len(d.target_name.encode()) + len(d.evidence)


class Discovery:
    """The discovery service's use cases over one engine.

    ``after_commit`` wakes the relay; ``wake_runner`` wakes the phase runner.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        after_commit: Callable[[], None],
        wake_runner: Callable[[], None],
    ) -> None:
        self._engine = engine
        self._after_commit = after_commit
        self._wake_runner = wake_runner
        self._tokens = pagination.PageTokens(engine)

    def _uow(self) -> UnitOfWork:
        return UnitOfWork(self._engine, source=SOURCE)

    async def create_child_flow(
        self, tenant: Tenant, cmd: CreateChildFlow, message_id: uuid.UUID | None
    ) -> ChildFlow:
        """Child flow + its INITIALIZATION event in one transaction; one child per master."""
        logs.bind(flow_id=str(cmd.master_flow_id))
        child = ChildFlow(
            id=uuid.uuid4(),
            master_flow_id=cmd.master_flow_id,
            client_account_id=tenant.client_account_id,
            engagement_id=tenant.engagement_id,
            create_user=tenant.user_id,
            flow_type=cmd.flow_type,
            display_name=cmd.display_name,
            import_id=cmd.import_id,
            auto_approve=cmd.auto_approve,
            confidence_threshold=cmd.confidence_threshold,
            identity_key=cmd.identity_key,
        )
        child.initialize()
        async with self._uow() as uow:
            created = await repository.create(
                uow.conn, child, _events(uow, child), consumer=uow.source, message_id=message_id
            )
            if not created:
                # Redelivered, or created before: the unique master id means one child, ever.
                existing = await repository.get_by_master(uow.conn, tenant, cmd.master_flow_id)
                if existing is None:
                    raise NotFound(f"flows/{cmd.master_flow_id} has no child flow for this tenant")
                await uow.commit()
                return existing
            await uow.commit()
        log.info("child flow created", extra={"child_flow_id": str(child.id)})
        self._after_commit()
        return child

    async def run_phase(
        self,
        tenant: Tenant,
        master_flow_id: uuid.UUID,
        phase: Phase,
        message_id: uuid.UUID | None,
        *,
        only_if: PhaseStatus | None = None,
    ) -> None:
        """Mark the phase RUNNING (reported at once) and queue its work for the runner.

        ``only_if``: the reconciler sends a lost command again with the status it saw; the
        command then applies only while the phase is still in it."""
        logs.bind(flow_id=str(master_flow_id), phase=phase.name)
        async with self._uow() as uow:
            fresh, child = await self._for_message(uow, tenant, master_flow_id, message_id)
            if not fresh:
                return
            if only_if is not None and child.phases[phase] != only_if:
                log.info(
                    "run phase ignored: moved on", extra={"phase_status": child.phases[phase].name}
                )
                await uow.commit()
                return
            if only_if == PhaseStatus.RUNNING and child.can_finish(phase):
                # RUNNING with its job lost. Queueing is a no-op while a job is queued or
                # running, so a job that does exist is left alone, and RUNNING is not
                # reported twice.
                await jobs.enqueue(uow.conn, child.id, phase)
                await uow.commit()
                self._wake_runner()
                return
            if not child.can_start(phase):
                log.info("run phase ignored", extra={"phase_status": child.phases[phase].name})
                await uow.commit()
                return
            child.set_phase(phase, PhaseStatus.RUNNING)
            await emit(uow, child)
            await jobs.enqueue(uow.conn, child.id, phase)
            await uow.commit()
        self._after_commit()
        self._wake_runner()

    async def cancel_child_flow(
        self, tenant: Tenant, master_flow_id: uuid.UUID, message_id: uuid.UUID | None
    ) -> None:
        logs.bind(flow_id=str(master_flow_id))
        async with self._uow() as uow:
            fresh, child = await self._for_message(uow, tenant, master_flow_id, message_id)
            if not fresh:
                return
            child.cancel()
            await repository.save(uow.conn, child)
            await jobs.cancel_for_child(uow.conn, child.id)
            await uow.commit()
        log.info("child flow cancelled")

    async def _for_message(
        self,
        uow: UnitOfWork,
        tenant: Tenant,
        master_flow_id: uuid.UUID,
        message_id: uuid.UUID | None,
    ) -> tuple[bool, ChildFlow]:
        """The command's inbox entry and its child, locked: one statement."""
        found = await repository.get_for_message(
            uow.conn, tenant, master_flow_id, uow.source, message_id
        )
        if found is None:
            raise NotFound(f"flows/{master_flow_id} has no child flow for this tenant")
        return found

    async def _locked(
        self, uow: UnitOfWork, tenant: Tenant, master_flow_id: uuid.UUID
    ) -> ChildFlow:
        child = await repository.get_by_master(uow.conn, tenant, master_flow_id, lock=True)
        if child is None:
            raise NotFound(f"flows/{master_flow_id} has no child flow for this tenant")
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

    async def describe_child_flow(
        self, tenant: Tenant, master_flow_id: uuid.UUID
    ) -> tuple[ChildFlow, list[jobs.ActiveJob]]:
        """The child and its unfinished phase jobs, read together, for diagnosis."""
        logs.bind(flow_id=str(master_flow_id))
        async with self._engine.connect() as conn:
            # One snapshot: a job finishing between two reads would look like a phase
            # RUNNING without a job (lost, to the reconciler).
            await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                child = await repository.get_by_master(conn, tenant, master_flow_id)
                if child is None:
                    raise NotFound(f"child flow of flows/{master_flow_id} not found")
                return child, await jobs.active_for_child(conn, child.id)

    async def upload(
        self, tenant: Tenant, request: UploadRequest, chunks: AsyncIterator[bytes]
    ) -> ImportSummary:
        return await uploads.upload(self._engine, tenant, request, chunks)

    async def get_import(self, tenant: Tenant, import_id: uuid.UUID) -> ImportSummary:
        logs.bind(import_id=str(import_id))
        async with self._engine.connect() as conn:
            found = await imports.get(conn, tenant, import_id, with_quarantine=True)
        if found is None:
            raise NotFound(f"imports/{import_id} not found")
        return found

    async def get_profile(self, tenant: Tenant, master_flow_id: uuid.UUID) -> DataProfile:
        child = await self.get_child_flow(tenant, master_flow_id=master_flow_id)
        async with self._engine.connect() as conn:
            profile = await profiles.get(conn, child.id)
        if profile is None:
            raise NotFound(
                f"flows/{master_flow_id} has no data profile yet"
                f" (DATA_VALIDATION is {child.phases[Phase.DATA_VALIDATION].name})"
            )
        return profile

    # -- attribute mapping -----------------------------------------------------------------

    async def phase_summaries(self, child: ChildFlow) -> list[PhaseSummary]:
        """What each completed data phase of ``child`` did with the rows."""
        done = [p for p in SUMMARISED if child.phases[p] == PhaseStatus.COMPLETED]
        if not done:
            return []
        async with self._engine.connect() as conn:
            return await findings.stored(conn, child.id, done)

    async def list_data_issues(
        self,
        tenant: Tenant,
        master_flow_id: uuid.UUID,
        *,
        kind: IssueKind | None,
        severity: Severity | None,
        source_column: str,
        row_number: int | None,
        page_size: int,
        page_token: str,
    ) -> tuple[ChildFlow, list[DataIssue], dict[str, tuple[str, ...]], str, int]:
        """A page of the flow's issues; also the columns feeding each attribute."""
        child = await self.get_child_flow(tenant, master_flow_id=master_flow_id)
        size = pagination.page_size(page_size)
        async with self._engine.connect() as conn:
            mapping = await mappings.get(conn, child.id, child.confidence_threshold)
            columns = columns_by_attribute(mapping)
            attributes: tuple[str, ...] | None = None
            if source_column:
                attributes = tuple(a for a, cs in columns.items() if source_column in cs)
                known = mapping is not None and any(
                    m.source_column == source_column for m in mapping.mappings
                )
                if not known:
                    raise InvalidArgument(
                        [
                            FieldViolation(
                                "source_column",
                                f"the flow's mapping has no column {source_column!r}",
                            )
                        ]
                    )
            f = IssueFilter(tuple(kinds_of(severity, kind)), attributes, row_number)
            query = f"{master_flow_id}|{f.query}"
            after = await self._tokens.decode_offset(page_token, query)
            found, total = await findings.list_page(conn, child.id, f, after=after, limit=size + 1)
        token = ""
        keep = min(size, pagination.fit(found, _issue_bytes))
        if len(found) > keep:
            found = found[:keep]
            token = await self._tokens.encode_offset(found[-1].id, query)
        return child, found, columns, token, total

    async def list_mappings(self, tenant: Tenant, master_flow_id: uuid.UUID) -> MappingSet:
        child = await self.get_child_flow(tenant, master_flow_id=master_flow_id)
        async with self._engine.connect() as conn:
            found = await mappings.get(conn, child.id, child.confidence_threshold)
        if found is None:
            raise NotFound(
                f"flows/{master_flow_id} has no mapping yet (ATTRIBUTE_MAPPING is"
                f" {child.phases[Phase.ATTRIBUTE_MAPPING].name})"
            )
        return found

    async def update_mappings(
        self,
        tenant: Tenant,
        master_flow_id: uuid.UUID,
        *,
        etag: str,
        updates: Sequence[Update],
        approve: bool,
        waive: Sequence[str] = (),
    ) -> MappingSet:
        """A person's edits and approval; approval completes ATTRIBUTE_MAPPING."""
        logs.bind(flow_id=str(master_flow_id))
        async with self._uow() as uow:
            child = await self._locked(uow, tenant, master_flow_id)
            status = child.phases[Phase.ATTRIBUTE_MAPPING]
            current = await mappings.get(uow.conn, child.id, child.confidence_threshold, lock=True)
            if current is None or (
                status != PhaseStatus.WAITING_FOR_APPROVAL and not current.approved
            ):
                raise FailedPrecondition(
                    "mappings can be edited only while the flow waits for their approval;"
                    f" ATTRIBUTE_MAPPING is {status.name}",
                    reason="NOT_WAITING_FOR_APPROVAL",
                    subject=f"flows/{master_flow_id}",
                )
            changed = current.updated(etag, updates, approve=approve, waive=waive)
            await mappings.save(
                uow.conn, child.id, changed, approved_by=tenant.user_id if approve else None
            )
            if changed.approved:
                child.set_phase(Phase.ATTRIBUTE_MAPPING, PhaseStatus.COMPLETED)
                await emit(uow, child)
            await uow.commit()
        if changed.approved:
            log.info("mapping approved")
            self._after_commit()
        return changed

    # -- inventory -------------------------------------------------------------------------

    async def list_assets(
        self,
        tenant: Tenant,
        *,
        asset_type: str,
        environment: str,
        page_size: int,
        page_token: str,
    ) -> tuple[list[Asset], str, int]:
        size = pagination.page_size(page_size)
        query = f"{asset_type}|{environment}"
        after = await self._tokens.decode_named(page_token, query)
        async with self._engine.connect() as conn:
            found, total = await assets.list_page(
                conn,
                tenant,
                asset_type=asset_type or None,
                environment=environment or None,
                after=after,
                limit=size + 1,
            )
        token = ""
        keep = min(size, pagination.fit(found, _asset_bytes))
        if len(found) > keep:
            found = found[:keep]
            token = await self._tokens.encode_named((found[-1].display_name, found[-1].id), query)
        return found, token, total

    async def get_asset(self, tenant: Tenant, asset_id: uuid.UUID) -> Asset:
        async with self._engine.connect() as conn:
            found = await assets.get(conn, tenant, asset_id)
        if found is None:
            raise NotFound(f"assets/{asset_id} not found")
        return found

    async def list_dependencies(
        self, tenant: Tenant, *, asset_id: uuid.UUID | None, page_size: int, page_token: str
    ) -> tuple[list[Dependency], str]:
        size = pagination.page_size(page_size)
        query = str(asset_id or "")
        after = await self._tokens.decode_offset(page_token, query)
        async with self._engine.connect() as conn:
            found = await assets.list_dependencies(
                conn, tenant, asset_id=asset_id, after=after, limit=size + 1
            )
        token = ""
        keep = min(size, pagination.fit(found, _dependency_bytes))
        if len(found) > keep:
            found = found[:keep]
            token = await self._tokens.encode_offset(found[-1].id, query)
        return found, token
