"""SQL for child flows (schema ``discovery``). Reads for clients are scoped to a tenant.

Statements run on the transaction's asyncpg connection (``db.fetch*`` with ``db.Sql``), one
per use case where a use case writes: creating a child writes the inbox entry of its command,
the child, its phases and its first event to the orchestrator in one statement; saving a
change writes the child, its phases and its new events in one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.domain.model import ChildFlow, PhaseFailure
from flowpair_shared.db import Sql, fetch, fetchrow, fetchval
from flowpair_shared.domain import FlowStatus, FlowType, IdentityKey, Phase, PhaseStatus
from flowpair_shared.outbox.inbox import (
    first_delivery_sql,
    inbox_cte,
    record_and_lock,
    record_and_lock_sql,
)
from flowpair_shared.outbox.store import OutboxRows, outbox_ctes
from flowpair_shared.tenancy import Tenant

_COLUMNS = """
  c.id, c.master_flow_id, c.client_account_id, c.engagement_id, c.create_user, c.flow_type,
  c.display_name, c.import_id, c.status, c.event_seq, c.create_time, c.update_time,
  c.auto_approve, c.confidence_threshold, c.identity_key,
  ARRAY(SELECT ROW(p.phase, p.status, p.update_time, p.error_reason, p.error_message)
        FROM discovery.child_phases p WHERE p.child_flow_id = c.id ORDER BY p.phase) AS phases
"""


def _from_row(row: Sequence[Any]) -> ChildFlow:
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
    for phase, status, update_time, reason, message in row[15]:
        child.phases[Phase(phase)] = PhaseStatus(status)
        if update_time is not None:
            child.phase_times[Phase(phase)] = update_time
        if reason is not None:
            child.phase_errors[Phase(phase)] = PhaseFailure(reason, message or "")
    return child


def tenant_of(child: ChildFlow) -> Tenant:
    """The tenant a child flow belongs to (its creator as the user)."""
    return Tenant(child.client_account_id, child.engagement_id, child.create_user)


def _phase_args(child: ChildFlow) -> tuple[list[Any], ...]:
    phases = list(child.phases.items())
    errors = [child.phase_errors.get(p) for p, _ in phases]
    return (
        [int(p) for p, _ in phases],
        [int(s) for _, s in phases],
        [child.phase_times.get(p) for p, _ in phases],
        [e.reason if e else None for e in errors],
        [e.message if e else None for e in errors],
    )


_WHEN_CREATED = "EXISTS (SELECT 1 FROM created)"
_CREATE = Sql(
    f"""
    WITH {inbox_cte(1, 2)},
    created AS (
      INSERT INTO discovery.child_flows
        (id, master_flow_id, client_account_id, engagement_id, create_user, flow_type,
         display_name, import_id, status, event_seq, auto_approve, confidence_threshold,
         identity_key)
      SELECT $3::uuid, $4::uuid, $5::uuid, $6::uuid, $7::uuid, $8::smallint, $9::text,
             $10::uuid, $11::smallint, $12::bigint, $13::boolean, $14::float8, $15::smallint
      WHERE {first_delivery_sql(2)}
      ON CONFLICT (master_flow_id) DO NOTHING
      RETURNING id, create_time, update_time
    ),
    phases AS (
      INSERT INTO discovery.child_phases
        (child_flow_id, phase, status, update_time, error_reason, error_message)
      SELECT c.id, s.* FROM created c,
        unnest($16::smallint[], $17::smallint[], $18::timestamptz[], $19::text[], $20::text[])
          AS s
    ),
    {outbox_ctes(21, when=_WHEN_CREATED)}
    SELECT {first_delivery_sql(2)}, c.create_time, c.update_time,
           (SELECT count(*) FROM outbox_notify)
    FROM (SELECT 1) AS one LEFT JOIN created c ON true
    """
)


async def create(
    conn: AsyncConnection,
    child: ChildFlow,
    events: OutboxRows,
    *,
    consumer: str,
    message_id: uuid.UUID | None,
) -> bool:
    """In one statement: record the command ``message_id`` in ``consumer``'s inbox and, if it
    is its first delivery and the master has no child yet, insert the child with its phases
    as they stand and ``events``. False if not created (a redelivery, or the master's child
    exists: the unique master id means one child, ever)."""
    row = await fetchrow(
        conn,
        _CREATE,
        consumer,
        message_id,
        child.id,
        child.master_flow_id,
        child.client_account_id,
        child.engagement_id,
        child.create_user,
        int(child.flow_type),
        child.display_name,
        child.import_id,
        int(child.status),
        child.event_seq,
        child.auto_approve,
        child.confidence_threshold,
        int(child.identity_key),
        *_phase_args(child),
        *events.args(),
    )
    assert row is not None
    if row[1] is None:
        return False
    child.create_time, child.update_time = row[1], row[2]
    child.events.clear()
    return True


_SAVE = Sql(
    f"""
    WITH child AS (
      UPDATE discovery.child_flows SET status = $2, event_seq = $3, update_time = now()
      WHERE id = $1
    ),
    phases AS (
      UPDATE discovery.child_phases p
      SET status = s.status, update_time = s.update_time, error_reason = s.reason,
          error_message = s.message
      FROM unnest($4::smallint[], $5::smallint[], $6::timestamptz[], $7::text[], $8::text[])
           AS s(phase, status, update_time, reason, message)
      WHERE p.child_flow_id = $1 AND p.phase = s.phase
        AND (p.status, p.update_time) IS DISTINCT FROM (s.status, s.update_time)
    ),
    {outbox_ctes(9)}
    SELECT count(*) FROM outbox_notify
    """
)


async def save(conn: AsyncConnection, child: ChildFlow, events: OutboxRows | None = None) -> None:
    """Persist the child's status, event counter, every phase's state and ``events``, in one
    statement."""
    events = events or OutboxRows("", child.master_flow_id, ())
    await fetchval(
        conn,
        _SAVE,
        child.id,
        int(child.status),
        child.event_seq,
        *_phase_args(child),
        *events.args(),
    )


async def _load(
    conn: AsyncConnection, where: str, args: Sequence[Any], *, lock: bool = False
) -> ChildFlow | None:
    if lock:
        # Lock, then read in a statement of its own: a locking read that waited returns the
        # child's row as committed but its phases from the snapshot before the wait.
        await fetch(
            conn, Sql(f"SELECT 1 FROM discovery.child_flows c WHERE {where} FOR UPDATE OF c"), *args
        )
    row = await fetchrow(
        conn, Sql(f"SELECT {_COLUMNS} FROM discovery.child_flows c WHERE {where}"), *args
    )
    return None if row is None else _from_row(row)


_TENANT = "c.client_account_id = $1 AND c.engagement_id = $2"


async def get(conn: AsyncConnection, tenant: Tenant, child_id: uuid.UUID) -> ChildFlow | None:
    return await _load(
        conn, f"{_TENANT} AND c.id = $3", (tenant.client_account_id, tenant.engagement_id, child_id)
    )


async def get_by_master(
    conn: AsyncConnection, tenant: Tenant, master_flow_id: uuid.UUID, *, lock: bool = False
) -> ChildFlow | None:
    return await _load(
        conn,
        f"{_TENANT} AND c.master_flow_id = $3",
        (tenant.client_account_id, tenant.engagement_id, master_flow_id),
        lock=lock,
    )


_FOR_MESSAGE = record_and_lock_sql(
    "discovery.child_flows", "c", f"{_TENANT} AND c.master_flow_id = $3"
)


async def get_for_message(
    conn: AsyncConnection,
    tenant: Tenant,
    master_flow_id: uuid.UUID,
    consumer: str,
    message_id: uuid.UUID | None,
) -> tuple[bool, ChildFlow] | None:
    """Record a delivered command in the inbox and lock its child in one statement, then read
    the child (see ``_load``): whether this is the command's first delivery, and the child
    (None: the master has none)."""
    first = await record_and_lock(conn, _FOR_MESSAGE, tenant, master_flow_id, consumer, message_id)
    if first is None:
        return None
    child = await get_by_master(conn, tenant, master_flow_id)
    assert child is not None  # locked by this transaction
    return first, child


async def get_for_job(
    conn: AsyncConnection, child_id: uuid.UUID, *, lock: bool
) -> ChildFlow | None:
    """A child for one of its own phase jobs (the job row already proves the tenant)."""
    return await _load(conn, "c.id = $1", (child_id,), lock=lock)
