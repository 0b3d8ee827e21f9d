"""SQL for master flows (schema ``orchestrator``). Every read is scoped to a tenant."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from flowpair_shared.domain import FlowStatus, FlowType, Phase, PhaseStatus
from flowpair_shared.tenancy import Tenant
from orchestrator_svc.domain.model import MasterFlow, PhaseError, PhaseState, Transition

_FLOW_COLUMNS = """
  f.id, f.client_account_id, f.engagement_id, f.create_user, f.flow_type, f.display_name,
  f.auto_approve, f.status, f.current_phase, f.child_flow_id, f.last_event_seq, f.history_seq,
  f.request_id, f.create_time, f.update_time
"""

_INSERT_FLOW = text(
    """
    INSERT INTO orchestrator.flows
      (id, client_account_id, engagement_id, create_user, request_id, flow_type, display_name,
       auto_approve, status, current_phase)
    VALUES (:id, :client_account_id, :engagement_id, :create_user, :request_id, :flow_type,
            :display_name, :auto_approve, :status, :current_phase)
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


def _flow_from_row(row: Sequence[Any], phases: Sequence[Sequence[Any]]) -> MasterFlow:
    flow = MasterFlow(
        id=row[0],
        client_account_id=row[1],
        engagement_id=row[2],
        create_user=row[3],
        flow_type=FlowType(row[4]),
        display_name=row[5],
        auto_approve=row[6],
        status=FlowStatus(row[7]),
        current_phase=Phase(row[8]),
        child_flow_id=row[9],
        last_event_seq=row[10],
        history_seq=row[11],
        request_id=row[12],
        create_time=row[13],
        update_time=row[14],
    )
    for phase, status, reason, message, update_time in phases:
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
                "status": int(flow.status),
                "current_phase": int(flow.current_phase),
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
    return True


async def _load(
    conn: AsyncConnection, where: str, params: dict[str, Any], lock: bool = False
) -> MasterFlow | None:
    row = (
        await conn.execute(
            text(
                f"SELECT {_FLOW_COLUMNS} FROM orchestrator.flows f WHERE {where}"
                + (" FOR UPDATE" if lock else "")
            ),
            params,
        )
    ).first()
    if row is None:
        return None
    phases = (
        await conn.execute(
            text(
                """
                SELECT phase, status, error_reason, error_message, update_time
                FROM orchestrator.flow_phases WHERE flow_id = :id ORDER BY phase
                """
            ),
            {"id": row[0]},
        )
    ).all()
    return _flow_from_row(row, phases)


_TENANT = "f.client_account_id = :client_account_id AND f.engagement_id = :engagement_id"


def _tenant_params(tenant: Tenant) -> dict[str, Any]:
    return {"client_account_id": tenant.client_account_id, "engagement_id": tenant.engagement_id}


async def get(
    conn: AsyncConnection, tenant: Tenant, flow_id: uuid.UUID, *, lock: bool = False
) -> MasterFlow | None:
    return await _load(
        conn, f"f.id = :id AND {_TENANT}", {"id": flow_id, **_tenant_params(tenant)}, lock
    )


async def get_by_request_id(
    conn: AsyncConnection, tenant: Tenant, request_id: uuid.UUID
) -> MasterFlow | None:
    return await _load(
        conn, f"f.request_id = :rid AND {_TENANT}", {"rid": request_id, **_tenant_params(tenant)}
    )


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
    rows = (
        await conn.execute(
            text(
                f"SELECT {_FLOW_COLUMNS} FROM orchestrator.flows f WHERE {' AND '.join(where)}"
                " ORDER BY f.create_time DESC, f.id DESC LIMIT :limit"
            ),
            params,
        )
    ).all()
    if not rows:
        return []
    phase_rows = (
        await conn.execute(
            text(
                """
                SELECT flow_id, phase, status, error_reason, error_message, update_time
                FROM orchestrator.flow_phases WHERE flow_id = ANY(:ids) ORDER BY flow_id, phase
                """
            ),
            {"ids": [r[0] for r in rows]},
        )
    ).all()
    by_flow: dict[uuid.UUID, list[Sequence[Any]]] = {}
    for pr in phase_rows:
        by_flow.setdefault(pr[0], []).append(pr[1:])
    return [_flow_from_row(r, by_flow.get(r[0], [])) for r in rows]


async def save_transition(conn: AsyncConnection, flow: MasterFlow, t: Transition) -> None:
    """Persist the flow's new state and append the transition to its history."""
    e = t.event
    await conn.execute(
        text(
            """
            UPDATE orchestrator.flows
            SET status = :status, current_phase = :phase, child_flow_id = :child,
                last_event_seq = :last_event_seq, history_seq = :history_seq, update_time = now()
            WHERE id = :id
            """
        ),
        {
            "id": flow.id,
            "status": int(flow.status),
            "phase": int(flow.current_phase),
            "child": flow.child_flow_id,
            "last_event_seq": flow.last_event_seq,
            "history_seq": flow.history_seq,
        },
    )
    error_reason = e.error.reason if e.error else None
    error_message = e.error.message if e.error else None
    await conn.execute(
        text(
            """
            UPDATE orchestrator.flow_phases
            SET status = :status, error_reason = :reason, error_message = :message,
                update_time = :occur_time
            WHERE flow_id = :id AND phase = :phase
            """
        ),
        {
            "id": flow.id,
            "phase": int(e.phase),
            "status": int(e.status),
            "reason": error_reason,
            "message": error_message,
            "occur_time": e.occur_time,
        },
    )
    await conn.execute(
        text(
            """
            INSERT INTO orchestrator.flow_events
              (flow_id, seq, phase, phase_status, flow_status, source_sequence, error_reason,
               error_message, occur_time)
            VALUES (:id, :seq, :phase, :phase_status, :flow_status, :source_sequence, :reason,
                    :message, :occur_time)
            """
        ),
        {
            "id": flow.id,
            "seq": t.history_seq,
            "phase": int(e.phase),
            "phase_status": int(e.status),
            "flow_status": int(t.flow_status),
            "source_sequence": e.sequence,
            "reason": error_reason,
            "message": error_message,
            "occur_time": e.occur_time,
        },
    )
