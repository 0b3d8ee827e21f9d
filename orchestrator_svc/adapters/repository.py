"""SQL for master flows (schema ``orchestrator``). Every read is scoped to a tenant."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from flowpair_shared.domain import (
    FlowEventKind,
    FlowStatus,
    FlowType,
    IdentityKey,
    Phase,
    PhaseStatus,
)
from flowpair_shared.tenancy import Tenant
from orchestrator_svc.domain.model import HistoryEntry, MasterFlow, PhaseError, PhaseState

FLOW_EVENTS_CHANNEL = "flowpair_flow_events"

_FLOW_COLUMNS = """
  f.id, f.client_account_id, f.engagement_id, f.create_user, f.flow_type, f.display_name,
  f.auto_approve, f.import_id, f.status, f.current_phase, f.child_flow_id, f.paused_by,
  f.last_event_seq, f.history_seq, f.request_id, f.create_time, f.update_time,
  f.mapping_confidence_threshold, f.identity_key
"""

_INSERT_FLOW = text(
    """
    INSERT INTO orchestrator.flows
      (id, client_account_id, engagement_id, create_user, request_id, flow_type, display_name,
       auto_approve, import_id, status, current_phase, history_seq,
       mapping_confidence_threshold, identity_key)
    VALUES (:id, :client_account_id, :engagement_id, :create_user, :request_id, :flow_type,
            :display_name, :auto_approve, :import_id, :status, :current_phase, :history_seq,
            :threshold, :identity_key)
    ON CONFLICT (client_account_id, engagement_id, request_id) DO NOTHING
    RETURNING create_time, update_time
    """
)

_INSERT_PHASES = text(
    """
    INSERT INTO orchestrator.flow_phases (flow_id, phase, status)
    SELECT :flow_id, p, :pending FROM unnest(CAST(:phases AS smallint[])) AS p
    """
)

_PHASES = text(
    """
    SELECT flow_id, phase, status, error_reason, error_message, update_time
    FROM orchestrator.flow_phases WHERE flow_id = ANY(:ids) ORDER BY flow_id, phase
    """
)


def _flow_from_row(row: Sequence[Any], phases: Sequence[Sequence[Any]]) -> MasterFlow:
    flow = MasterFlow(
        id=row[0],
        client_account_id=row[1],
        engagement_id=row[2],
        create_user=row[3],
        flow_type=FlowType(row[4]),
        display_name=row[5],
        auto_approve=row[6],
        import_id=row[7],
        status=FlowStatus(row[8]),
        current_phase=Phase(row[9]),
        child_flow_id=row[10],
        paused_by=row[11],
        last_event_seq=row[12],
        history_seq=row[13],
        request_id=row[14],
        create_time=row[15],
        update_time=row[16],
        mapping_confidence_threshold=row[17],
        identity_key=IdentityKey(row[18]),
    )
    for _flow_id, phase, status, reason, message, update_time in phases:
        error = PhaseError(reason, message or "") if reason is not None else None
        flow.phases[Phase(phase)] = PhaseState(
            Phase(phase), PhaseStatus(status), update_time, error
        )
    return flow


async def insert(conn: AsyncConnection, flow: MasterFlow) -> bool:
    """Insert a new flow with all its phases PENDING; False if its request id was taken."""
    row = (
        await conn.execute(
            _INSERT_FLOW,
            {
                "id": flow.id,
                "client_account_id": flow.client_account_id,
                "engagement_id": flow.engagement_id,
                "create_user": flow.create_user,
                "request_id": flow.request_id,
                "flow_type": int(flow.flow_type),
                "display_name": flow.display_name,
                "auto_approve": flow.auto_approve,
                "import_id": flow.import_id,
                "status": int(flow.status),
                "current_phase": int(flow.current_phase),
                "history_seq": flow.history_seq,
                "threshold": flow.mapping_confidence_threshold,
                "identity_key": int(flow.identity_key),
            },
        )
    ).first()
    if row is None:
        return False
    flow.create_time, flow.update_time = row
    await conn.execute(
        _INSERT_PHASES,
        {
            "flow_id": flow.id,
            "pending": int(PhaseStatus.PENDING),
            "phases": [int(p) for p in Phase],
        },
    )
    await append_history(conn, flow)
    return True


_TENANT = "f.client_account_id = :client_account_id AND f.engagement_id = :engagement_id"


def _tenant_params(tenant: Tenant) -> dict[str, Any]:
    return {"client_account_id": tenant.client_account_id, "engagement_id": tenant.engagement_id}


async def _select(
    conn: AsyncConnection, where: str, params: dict[str, Any], *, suffix: str = ""
) -> list[MasterFlow]:
    rows = (
        await conn.execute(
            text(f"SELECT {_FLOW_COLUMNS} FROM orchestrator.flows f WHERE {where} {suffix}"),
            params,
        )
    ).all()
    if not rows:
        return []
    by_flow: dict[uuid.UUID, list[Sequence[Any]]] = {}
    for pr in (await conn.execute(_PHASES, {"ids": [r[0] for r in rows]})).all():
        by_flow.setdefault(pr[0], []).append(pr)
    return [_flow_from_row(r, by_flow.get(r[0], [])) for r in rows]


async def get(
    conn: AsyncConnection, tenant: Tenant, flow_id: uuid.UUID, *, lock: bool = False
) -> MasterFlow | None:
    flows = await _select(
        conn,
        f"f.id = :id AND {_TENANT}",
        {"id": flow_id, **_tenant_params(tenant)},
        suffix="FOR UPDATE" if lock else "",
    )
    return flows[0] if flows else None


async def get_by_request_id(
    conn: AsyncConnection, tenant: Tenant, request_id: uuid.UUID
) -> MasterFlow | None:
    flows = await _select(
        conn, f"f.request_id = :rid AND {_TENANT}", {"rid": request_id, **_tenant_params(tenant)}
    )
    return flows[0] if flows else None


async def lock_engagement(conn: AsyncConnection, tenant: Tenant) -> None:
    """Serialise the creation of exclusive flows in an engagement: an advisory lock held to
    commit. In READ COMMITTED each later statement sees what the previous holder committed."""
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:e, 0))"),
        {"e": str(tenant.engagement_id)},
    )


async def incomplete_discovery_flow(conn: AsyncConnection, tenant: Tenant) -> uuid.UUID | None:
    """An engagement's discovery flow that is neither completed nor cancelled, if any.

    Call it holding ``lock_engagement``, so two concurrent creates cannot both see none.
    """
    value = (
        await conn.execute(
            text(
                f"SELECT f.id FROM orchestrator.flows f WHERE {_TENANT}"
                " AND f.flow_type = :discovery AND NOT (f.status = ANY(:done)) LIMIT 1"
            ),
            {
                **_tenant_params(tenant),
                "discovery": int(FlowType.DISCOVERY),
                "done": [int(FlowStatus.COMPLETED), int(FlowStatus.CANCELLED)],
            },
        )
    ).scalar_one_or_none()
    return value if isinstance(value, uuid.UUID) else None


async def list_page(
    conn: AsyncConnection,
    tenant: Tenant,
    *,
    statuses: Sequence[FlowStatus],
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[MasterFlow]:
    """One page of flows, newest first, after the keyset position ``after``."""
    params: dict[str, Any] = {**_tenant_params(tenant), "limit": limit}
    where = [_TENANT]
    if statuses:
        where.append("f.status = ANY(CAST(:statuses AS smallint[]))")
        params["statuses"] = [int(s) for s in statuses]
    if after is not None:
        where.append("(f.create_time, f.id) < (:after_time, :after_id)")
        params["after_time"], params["after_id"] = after
    return await _select(
        conn,
        " AND ".join(where),
        params,
        suffix="ORDER BY f.create_time DESC, f.id DESC LIMIT :limit",
    )


async def save(conn: AsyncConnection, flow: MasterFlow) -> None:
    """Persist the flow's state, every phase's state and its new history entries."""
    await conn.execute(
        text(
            """
            UPDATE orchestrator.flows
            SET status = :status, current_phase = :phase, child_flow_id = :child,
                paused_by = :paused_by, last_event_seq = :last_event_seq,
                history_seq = :history_seq, update_time = now()
            WHERE id = :id
            """
        ),
        {
            "id": flow.id,
            "status": int(flow.status),
            "phase": int(flow.current_phase),
            "child": flow.child_flow_id,
            "paused_by": flow.paused_by,
            "last_event_seq": flow.last_event_seq,
            "history_seq": flow.history_seq,
        },
    )
    states = list(flow.phases.values())
    await conn.execute(
        text(
            """
            UPDATE orchestrator.flow_phases p
            SET status = s.status, error_reason = s.reason, error_message = s.message,
                update_time = s.update_time
            FROM unnest(CAST(:phases AS smallint[]), CAST(:statuses AS smallint[]),
                        CAST(:reasons AS text[]), CAST(:messages AS text[]),
                        CAST(:times AS timestamptz[]))
                 AS s(phase, status, reason, message, update_time)
            WHERE p.flow_id = :id AND p.phase = s.phase
              AND (p.status, p.update_time) IS DISTINCT FROM (s.status, s.update_time)
            """
        ),
        {
            "id": flow.id,
            "phases": [int(s.phase) for s in states],
            "statuses": [int(s.status) for s in states],
            "reasons": [s.error.reason if s.error else None for s in states],
            "messages": [s.error.message if s.error else None for s in states],
            "times": [s.update_time for s in states],
        },
    )
    await append_history(conn, flow)


async def append_history(conn: AsyncConnection, flow: MasterFlow) -> None:
    """Insert the flow's new history entries and wake its watchers at commit."""
    if not flow.new_history:
        return
    await conn.execute(
        text(
            """
            INSERT INTO orchestrator.flow_events
              (flow_id, seq, kind, phase, phase_status, flow_status, actor, reason,
               source_sequence, error_reason, error_message, occur_time)
            VALUES (:id, :seq, :kind, :phase, :phase_status, :flow_status, :actor, :reason,
                    :source_sequence, :error_reason, :error_message, :occur_time)
            """
        ),
        [
            {
                "id": flow.id,
                "seq": e.sequence,
                "kind": int(e.kind),
                "phase": int(e.phase) if e.phase else None,
                "phase_status": int(e.phase_status) if e.phase_status else None,
                "flow_status": int(e.flow_status),
                "actor": e.actor,
                "reason": e.reason or None,
                "source_sequence": e.source_sequence,
                "error_reason": e.error.reason if e.error else None,
                "error_message": e.error.message if e.error else None,
                "occur_time": e.occur_time,
            }
            for e in flow.new_history
        ],
    )
    await conn.execute(
        text("SELECT pg_notify(:channel, :id)"),
        {"channel": FLOW_EVENTS_CHANNEL, "id": str(flow.id)},
    )
    flow.new_history.clear()


async def list_history(
    conn: AsyncConnection, flow_id: uuid.UUID, *, after: int, limit: int
) -> list[HistoryEntry]:
    """History entries of a flow with sequence > ``after``, in order (tenant checked by caller)."""
    rows = await conn.execute(
        text(
            """
            SELECT seq, kind, flow_status, occur_time, phase, phase_status, actor,
                   coalesce(reason, ''), error_reason, error_message, source_sequence
            FROM orchestrator.flow_events
            WHERE flow_id = :id AND seq > :after ORDER BY seq LIMIT :limit
            """
        ),
        {"id": flow_id, "after": after, "limit": limit},
    )
    return [
        HistoryEntry(
            sequence=r[0],
            kind=FlowEventKind(r[1]),
            flow_status=FlowStatus(r[2]),
            occur_time=r[3],
            phase=Phase(r[4]) if r[4] is not None else None,
            phase_status=PhaseStatus(r[5]) if r[5] is not None else None,
            actor=r[6],
            reason=r[7],
            error=PhaseError(r[8], r[9] or "") if r[8] is not None else None,
            source_sequence=r[10],
        )
        for r in rows
    ]


async def status_of(conn: AsyncConnection, flow_id: uuid.UUID) -> FlowStatus | None:
    value = (
        await conn.execute(
            text("SELECT status FROM orchestrator.flows WHERE id = :id"), {"id": flow_id}
        )
    ).scalar_one_or_none()
    return FlowStatus(value) if value is not None else None
