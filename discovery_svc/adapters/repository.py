"""SQL for child flows (schema ``discovery``). Reads for clients are scoped to a tenant."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.domain.model import ChildFlow, PhaseFailure
from flowpair_shared.domain import FlowStatus, FlowType, IdentityKey, Phase, PhaseStatus
from flowpair_shared.tenancy import Tenant

_COLUMNS = """
  c.id, c.master_flow_id, c.client_account_id, c.engagement_id, c.create_user, c.flow_type,
  c.display_name, c.import_id, c.status, c.event_seq, c.create_time, c.update_time,
  c.auto_approve, c.confidence_threshold, c.identity_key
"""


def _from_row(row: Sequence[Any], phases: Sequence[Sequence[Any]]) -> ChildFlow:
    child = ChildFlow(
        id=row[0],
        master_flow_id=row[1],
        client_account_id=row[2],
        engagement_id=row[3],
        create_user=row[4],
        flow_type=FlowType(row[5]),
        display_name=row[6],
        import_id=row[7],
        status=FlowStatus(row[8]),
        event_seq=row[9],
        create_time=row[10],
        update_time=row[11],
        auto_approve=row[12],
        confidence_threshold=row[13],
        identity_key=IdentityKey(row[14]),
    )
    for phase, status, update_time, reason, message in phases:
        child.phases[Phase(phase)] = PhaseStatus(status)
        if update_time is not None:
            child.phase_times[Phase(phase)] = update_time
        if reason is not None:
            child.phase_errors[Phase(phase)] = PhaseFailure(reason, message or "")
    return child


def tenant_of(child: ChildFlow) -> Tenant:
    """The tenant a child flow belongs to (its creator as the user)."""
    return Tenant(child.client_account_id, child.engagement_id, child.create_user)


async def insert(conn: AsyncConnection, child: ChildFlow) -> bool:
    """Insert the child and one row per phase; False if the master already has a child."""
    row = (
        await conn.execute(
            text(
                """
                INSERT INTO discovery.child_flows
                  (id, master_flow_id, client_account_id, engagement_id, create_user, flow_type,
                   display_name, import_id, status, event_seq, auto_approve,
                   confidence_threshold, identity_key)
                VALUES (:id, :master, :client_account_id, :engagement_id, :create_user,
                        :flow_type, :display_name, :import_id, :status, :event_seq,
                        :auto_approve, :threshold, :identity_key)
                ON CONFLICT (master_flow_id) DO NOTHING
                RETURNING create_time, update_time
                """
            ),
            {
                "id": child.id,
                "master": child.master_flow_id,
                "client_account_id": child.client_account_id,
                "engagement_id": child.engagement_id,
                "create_user": child.create_user,
                "flow_type": int(child.flow_type),
                "display_name": child.display_name,
                "import_id": child.import_id,
                "status": int(child.status),
                "event_seq": child.event_seq,
                "auto_approve": child.auto_approve,
                "threshold": child.confidence_threshold,
                "identity_key": int(child.identity_key),
            },
        )
    ).first()
    if row is None:
        return False
    child.create_time, child.update_time = row
    await conn.execute(
        text(
            """
            INSERT INTO discovery.child_phases (child_flow_id, phase, status)
            SELECT :id, p, :pending FROM unnest(CAST(:phases AS smallint[])) AS p
            """
        ),
        {"id": child.id, "pending": int(PhaseStatus.PENDING), "phases": [int(p) for p in Phase]},
    )
    await save(conn, child)
    return True


async def save(conn: AsyncConnection, child: ChildFlow) -> None:
    """Persist the child's status, event counter and every phase's state."""
    await conn.execute(
        text(
            """
            UPDATE discovery.child_flows
            SET status = :status, event_seq = :event_seq, update_time = now() WHERE id = :id
            """
        ),
        {"id": child.id, "status": int(child.status), "event_seq": child.event_seq},
    )
    phases = list(child.phases.items())
    errors = [child.phase_errors.get(p) for p, _ in phases]
    await conn.execute(
        text(
            """
            UPDATE discovery.child_phases p
            SET status = s.status, update_time = s.update_time, error_reason = s.reason,
                error_message = s.message
            FROM unnest(CAST(:phases AS smallint[]), CAST(:statuses AS smallint[]),
                        CAST(:times AS timestamptz[]), CAST(:reasons AS text[]),
                        CAST(:messages AS text[])) AS s(phase, status, update_time, reason, message)
            WHERE p.child_flow_id = :id AND p.phase = s.phase
              AND (p.status, p.update_time) IS DISTINCT FROM (s.status, s.update_time)
            """
        ),
        {
            "id": child.id,
            "phases": [int(p) for p, _ in phases],
            "statuses": [int(s) for _, s in phases],
            "times": [child.phase_times.get(p) for p, _ in phases],
            "reasons": [e.reason if e else None for e in errors],
            "messages": [e.message if e else None for e in errors],
        },
    )


async def _load(
    conn: AsyncConnection, where: str, params: dict[str, Any], *, lock: bool = False
) -> ChildFlow | None:
    row = (
        await conn.execute(
            text(
                f"SELECT {_COLUMNS} FROM discovery.child_flows c WHERE {where}"
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
                "SELECT phase, status, update_time, error_reason, error_message"
                " FROM discovery.child_phases WHERE child_flow_id = :id ORDER BY phase"
            ),
            {"id": row[0]},
        )
    ).all()
    return _from_row(row, phases)


_TENANT = "c.client_account_id = :client_account_id AND c.engagement_id = :engagement_id"


def _tenant(tenant: Tenant) -> dict[str, Any]:
    return {"client_account_id": tenant.client_account_id, "engagement_id": tenant.engagement_id}


async def get(conn: AsyncConnection, tenant: Tenant, child_id: uuid.UUID) -> ChildFlow | None:
    return await _load(conn, f"c.id = :id AND {_TENANT}", {"id": child_id, **_tenant(tenant)})


async def get_by_master(
    conn: AsyncConnection, tenant: Tenant, master_flow_id: uuid.UUID, *, lock: bool = False
) -> ChildFlow | None:
    return await _load(
        conn,
        f"c.master_flow_id = :m AND {_TENANT}",
        {"m": master_flow_id, **_tenant(tenant)},
        lock=lock,
    )


async def get_for_job(
    conn: AsyncConnection, child_id: uuid.UUID, *, lock: bool
) -> ChildFlow | None:
    """A child for one of its own phase jobs (the job row already proves the tenant)."""
    return await _load(conn, "c.id = :id", {"id": child_id}, lock=lock)
