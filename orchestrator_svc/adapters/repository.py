"""SQL for master flows (schema ``orchestrator``). Every read is scoped to a tenant.

Statements run on the transaction's asyncpg connection (``db.fetch*`` with ``db.Sql``), one
per use case where a use case writes: creating a flow writes the flow, its phases, its first
history entry and its command to discovery, and wakes watchers and relays, in one statement;
saving a change writes the flow, its phases, its new history and its commands in one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from flowpair_shared.db import Sql, fetch, fetchrow, fetchval
from flowpair_shared.domain import (
    FlowEventKind,
    FlowStatus,
    FlowType,
    IdentityKey,
    Phase,
    PhaseStatus,
)
from flowpair_shared.outbox.inbox import (
    record_and_lock,
    record_and_lock_sql,
)
from flowpair_shared.outbox.store import OutboxRows, outbox_ctes
from flowpair_shared.tenancy import Tenant
from orchestrator_svc.domain.model import HistoryEntry, MasterFlow, PhaseError, PhaseState

FLOW_EVENTS_CHANNEL = "flowpair_flow_events"

_FLOW_COLUMNS = """
  f.id, f.client_account_id, f.engagement_id, f.create_user, f.flow_type, f.display_name,
  f.auto_approve, f.import_id, f.status, f.current_phase, f.child_flow_id, f.paused_by,
  f.last_event_seq, f.history_seq, f.request_id, f.create_time, f.update_time,
  f.mapping_confidence_threshold, f.identity_key,
  ARRAY(SELECT ROW(p.phase, p.status, p.error_reason, p.error_message, p.update_time)
        FROM orchestrator.flow_phases p WHERE p.flow_id = f.id ORDER BY p.phase) AS phases
"""
_TENANT = "f.client_account_id = $1 AND f.engagement_id = $2"


def _history_ctes(flow: int, first: int, *, when: str = "true") -> str:
    """``WITH`` clauses inserting the history entries of ``_history_args`` (``$first`` on) of
    the flow ``$flow``, and waking its watchers at commit (read ``history_notify``)."""
    seq, kind, phase, pstatus, fstatus, actor, reason, source, ereason, emessage, occur = (
        f"${first + i}" for i in range(11)
    )
    return f"""
    history AS (
      INSERT INTO orchestrator.flow_events
        (flow_id, seq, kind, phase, phase_status, flow_status, actor, reason,
         source_sequence, error_reason, error_message, occur_time)
      SELECT ${flow}::uuid, h.* FROM unnest(
        {seq}::bigint[], {kind}::smallint[], {phase}::smallint[], {pstatus}::smallint[],
        {fstatus}::smallint[], {actor}::uuid[], {reason}::text[], {source}::bigint[],
        {ereason}::text[], {emessage}::text[], {occur}::timestamptz[]) AS h
      WHERE ({when})
      RETURNING 1
    ),
    history_notify AS (
      SELECT pg_notify('{FLOW_EVENTS_CHANNEL}', ${flow}::text)
      WHERE cardinality({seq}::bigint[]) > 0 AND ({when})
    )
    """


def _history_args(entries: Sequence[HistoryEntry]) -> tuple[list[Any], ...]:
    return (
        [e.sequence for e in entries],
        [int(e.kind) for e in entries],
        [int(e.phase) if e.phase else None for e in entries],
        [int(e.phase_status) if e.phase_status else None for e in entries],
        [int(e.flow_status) for e in entries],
        [e.actor for e in entries],
        [e.reason or None for e in entries],
        [e.source_sequence for e in entries],
        [e.error.reason if e.error else None for e in entries],
        [e.error.message if e.error else None for e in entries],
        [e.occur_time for e in entries],
    )


def _flow_from_row(row: Sequence[Any]) -> MasterFlow:
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
    for phase, status, reason, message, update_time in row[19]:
        error = PhaseError(reason, message or "") if reason is not None else None
        flow.phases[Phase(phase)] = PhaseState(
            Phase(phase), PhaseStatus(status), update_time, error
        )
    return flow


# -- creating a flow -----------------------------------------------------------------------

_INCOMPLETE_ARGS = (
    int(FlowType.DISCOVERY),
    [int(FlowStatus.COMPLETED), int(FlowStatus.CANCELLED)],
)


def _incomplete(alias: str, flow_type: int, settled: int) -> str:
    """SQL: the flow ``alias`` is an incomplete discovery flow, one an exclusive flow is not
    created (``create``) or retried (``get_for_retry``) beside; ``$flow_type`` and
    ``$settled`` take ``_INCOMPLETE_ARGS``. Completed and cancelled flows do not count, nor a
    flow FAILED in DATA_IMPORT: its import did not exist, nothing was built from it, and a
    retry of it checks its engagement again."""
    return (
        f"{alias}.flow_type = ${flow_type}::smallint"
        f" AND NOT ({alias}.status = ANY(${settled}::smallint[]))"
        f" AND NOT ({alias}.status = {int(FlowStatus.FAILED)}"
        f" AND {alias}.current_phase = {int(Phase.DATA_IMPORT)})"
    )


_WHEN_CREATED = "EXISTS (SELECT 1 FROM created)"
_CREATE = Sql(
    f"""
    WITH existing AS (
      SELECT f.id FROM orchestrator.flows f
      WHERE {_TENANT} AND $3::uuid IS NOT NULL AND f.request_id = $3
    ),
    other AS (
      SELECT f.id FROM orchestrator.flows f
      WHERE $4::boolean AND {_TENANT} AND {_incomplete("f", 5, 6)}
      LIMIT 1
    ),
    created AS (
      INSERT INTO orchestrator.flows
        (id, client_account_id, engagement_id, create_user, request_id, flow_type,
         display_name, auto_approve, import_id, status, current_phase, history_seq,
         mapping_confidence_threshold, identity_key, exclusive)
      SELECT $7::uuid, $1::uuid, $2::uuid, $8::uuid, $3::uuid, $9::smallint, $10::text,
             $11::boolean, $12::uuid, $13::smallint, $14::smallint, $15::bigint,
             $16::float8, $17::smallint, $4::boolean
      WHERE NOT EXISTS (SELECT 1 FROM existing) AND NOT EXISTS (SELECT 1 FROM other)
      ON CONFLICT (client_account_id, engagement_id, request_id) DO NOTHING
      RETURNING id, create_time, update_time
    ),
    phases AS (
      INSERT INTO orchestrator.flow_phases (flow_id, phase, status)
      SELECT c.id, p, $18::smallint FROM created c, unnest($19::smallint[]) AS p
    ),
    {_history_ctes(7, 20, when=_WHEN_CREATED)},
    {outbox_ctes(31, when=_WHEN_CREATED)}
    SELECT (SELECT id FROM existing), (SELECT id FROM other), c.create_time, c.update_time,
           (SELECT count(*) FROM history_notify) + (SELECT count(*) FROM outbox_notify)
    FROM (SELECT 1) AS one LEFT JOIN created c ON true
    """
)


@dataclass(frozen=True)
class Created:
    """What ``create`` did: created the flow, or found why not."""

    existing: uuid.UUID | None
    """The flow created before with the same request id."""
    other: uuid.UUID | None
    """The engagement's incomplete discovery flow (an exclusive create only)."""
    created: bool


async def create(
    conn: AsyncConnection, flow: MasterFlow, command: OutboxRows, *, exclusive: bool
) -> Created:
    """In one statement: unless the request id names a flow already, or (``exclusive``) the
    engagement has an incomplete discovery flow, insert ``flow`` with all its phases PENDING,
    its new history and ``command``, recording ``exclusive`` (its retries check it again: see
    ``get_for_retry``). Not created and neither found: a concurrent create with the same
    request id committed first (the insert waited for it; a later statement sees it).

    An exclusive create holds ``lock_engagement`` first, so two cannot both see no other."""
    row = await fetchrow(
        conn,
        _CREATE,
        flow.client_account_id,
        flow.engagement_id,
        flow.request_id,
        exclusive,
        *_INCOMPLETE_ARGS,
        flow.id,
        flow.create_user,
        int(flow.flow_type),
        flow.display_name,
        flow.auto_approve,
        flow.import_id,
        int(flow.status),
        int(flow.current_phase),
        flow.history_seq,
        flow.mapping_confidence_threshold,
        int(flow.identity_key),
        int(PhaseStatus.PENDING),
        [int(p) for p in Phase],
        *_history_args(flow.new_history),
        *command.args(),
    )
    assert row is not None
    existing, other, create_time, update_time = row[0], row[1], row[2], row[3]
    if existing is not None:
        return Created(existing, None, False)
    if other is not None:
        return Created(None, other, False)
    if create_time is None:
        return Created(None, None, False)
    flow.create_time, flow.update_time = create_time, update_time
    flow.new_history.clear()
    return Created(None, None, True)


_LOCK_ENGAGEMENT = Sql("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")


async def lock_engagement(conn: AsyncConnection, tenant: Tenant) -> None:
    """Serialise the creation of exclusive flows in an engagement, and the retries of
    DATA_IMPORT (``get_for_retry``): an advisory lock held to commit. In READ COMMITTED each
    later statement sees what the previous holder committed."""
    await fetchval(conn, _LOCK_ENGAGEMENT, str(tenant.engagement_id))


_FOR_RETRY = Sql(
    f"""
    SELECT {_FLOW_COLUMNS},
      (SELECT o.id FROM orchestrator.flows o
       WHERE f.exclusive AND o.client_account_id = f.client_account_id
         AND o.engagement_id = f.engagement_id AND o.id <> f.id AND {_incomplete("o", 4, 5)}
       LIMIT 1)
    FROM orchestrator.flows f WHERE {_TENANT} AND f.id = $3
    """
)


async def get_for_retry(
    conn: AsyncConnection, tenant: Tenant, flow_id: uuid.UUID
) -> tuple[MasterFlow, uuid.UUID | None] | None:
    """Lock the flow and read it (see ``_lock``) with, if it was created exclusive, the
    engagement's other incomplete discovery flow as ``create`` counts them (None: there is
    none, or the flow was created with ``allow_concurrent``). Hold ``lock_engagement`` first,
    as an exclusive create does: the read, a later statement, sees every create and retry
    that held it before."""
    args = (tenant.client_account_id, tenant.engagement_id, flow_id)
    await _lock(conn, f"{_TENANT} AND f.id = $3", args)
    row = await fetchrow(conn, _FOR_RETRY, *args, *_INCOMPLETE_ARGS)
    if row is None:
        return None
    return _flow_from_row(row), row[-1]


# -- reading -------------------------------------------------------------------------------


async def _lock(conn: AsyncConnection, where: str, args: Sequence[Any]) -> None:
    """Lock flows before reading them. In READ COMMITTED a locking read that waited for another
    transaction returns the locked row as that transaction committed it, but the rest of the
    statement (the phases) from the snapshot taken before the wait; the read that follows
    this statement gets a snapshot from after the lock."""
    await fetch(
        conn, Sql(f"SELECT 1 FROM orchestrator.flows f WHERE {where} FOR UPDATE OF f"), *args
    )


async def _select(
    conn: AsyncConnection, where: str, args: Sequence[Any], *, suffix: str = "", lock: bool = False
) -> list[MasterFlow]:
    if lock:
        await _lock(conn, where, args)
    rows = await fetch(
        conn, Sql(f"SELECT {_FLOW_COLUMNS} FROM orchestrator.flows f WHERE {where} {suffix}"), *args
    )
    return [_flow_from_row(r) for r in rows]


async def get(
    conn: AsyncConnection, tenant: Tenant, flow_id: uuid.UUID, *, lock: bool = False
) -> MasterFlow | None:
    flows = await _select(
        conn,
        f"{_TENANT} AND f.id = $3",
        (tenant.client_account_id, tenant.engagement_id, flow_id),
        lock=lock,
    )
    return flows[0] if flows else None


_FOR_MESSAGE = record_and_lock_sql("orchestrator.flows", "f", f"{_TENANT} AND f.id = $3")


async def get_for_message(
    conn: AsyncConnection,
    tenant: Tenant,
    flow_id: uuid.UUID,
    consumer: str,
    message_id: uuid.UUID | None,
) -> tuple[bool, MasterFlow] | None:
    """Record a delivered message in the inbox and lock its flow in one statement, then read
    the flow (see ``_lock``): whether this is the message's first delivery, and the
    flow (None: no such flow)."""
    first = await record_and_lock(conn, _FOR_MESSAGE, tenant, flow_id, consumer, message_id)
    if first is None:
        return None
    flow = await get(conn, tenant, flow_id)
    assert flow is not None  # locked by this transaction
    return first, flow


async def get_by_request_id(
    conn: AsyncConnection, tenant: Tenant, request_id: uuid.UUID
) -> MasterFlow | None:
    flows = await _select(
        conn,
        f"{_TENANT} AND f.request_id = $3",
        (tenant.client_account_id, tenant.engagement_id, request_id),
    )
    return flows[0] if flows else None


async def list_page(
    conn: AsyncConnection,
    tenant: Tenant,
    *,
    statuses: Sequence[FlowStatus],
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[MasterFlow]:
    """One page of flows, newest first, after the keyset position ``after``."""
    args: list[Any] = [tenant.client_account_id, tenant.engagement_id, limit]
    where = [_TENANT]
    if statuses:
        args.append([int(s) for s in statuses])
        where.append(f"f.status = ANY(${len(args)}::smallint[])")
    if after is not None:
        args.extend(after)
        where.append(f"(f.create_time, f.id) < (${len(args) - 1}, ${len(args)})")
    return await _select(
        conn, " AND ".join(where), args, suffix="ORDER BY f.create_time DESC, f.id DESC LIMIT $3"
    )


# -- saving a change -----------------------------------------------------------------------

_SAVE = Sql(
    f"""
    WITH flow AS (
      UPDATE orchestrator.flows
      SET status = $2, current_phase = $3, child_flow_id = $4, paused_by = $5,
          last_event_seq = $6, history_seq = $7, update_time = now()
      WHERE id = $1
    ),
    phases AS (
      UPDATE orchestrator.flow_phases p
      SET status = s.status, error_reason = s.reason, error_message = s.message,
          update_time = s.update_time
      FROM unnest($8::smallint[], $9::smallint[], $10::text[], $11::text[],
                  $12::timestamptz[]) AS s(phase, status, reason, message, update_time)
      WHERE p.flow_id = $1 AND p.phase = s.phase
        AND (p.status, p.update_time) IS DISTINCT FROM (s.status, s.update_time)
    ),
    {_history_ctes(1, 13)},
    {outbox_ctes(24)}
    SELECT (SELECT count(*) FROM history_notify) + (SELECT count(*) FROM outbox_notify)
    """
)


async def save(conn: AsyncConnection, flow: MasterFlow, commands: OutboxRows) -> None:
    """Persist the flow's state, every phase's state, its new history entries (waking its
    watchers) and ``commands``, in one statement."""
    states = list(flow.phases.values())
    await fetchval(
        conn,
        _SAVE,
        flow.id,
        int(flow.status),
        int(flow.current_phase),
        flow.child_flow_id,
        flow.paused_by,
        flow.last_event_seq,
        flow.history_seq,
        [int(s.phase) for s in states],
        [int(s.status) for s in states],
        [s.error.reason if s.error else None for s in states],
        [s.error.message if s.error else None for s in states],
        [s.update_time for s in states],
        *_history_args(flow.new_history),
        *commands.args(),
    )
    flow.new_history.clear()


# -- history -------------------------------------------------------------------------------

_HISTORY = Sql(
    """
    SELECT seq, kind, flow_status, occur_time, phase, phase_status, actor,
           coalesce(reason, ''), error_reason, error_message, source_sequence
    FROM orchestrator.flow_events
    WHERE flow_id = $1 AND seq > $2 ORDER BY seq LIMIT $3
    """
)


async def list_history(
    conn: AsyncConnection, flow_id: uuid.UUID, *, after: int, limit: int
) -> list[HistoryEntry]:
    """History entries of a flow with sequence > ``after``, in order (tenant checked by caller)."""
    rows = await fetch(conn, _HISTORY, flow_id, after, limit)
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


_QUIET = Sql(
    "SELECT id, client_account_id, engagement_id, create_user, update_time"
    " FROM orchestrator.stalled_flows($1, $2, $3, $4)"
)


@dataclass(frozen=True)
class QuietFlow:
    """A running flow of any tenant with no change for a while (``orchestrator.stalled_flows``
    shows nothing else of it)."""

    id: uuid.UUID
    tenant: Tenant
    """Its tenant, with its creator as the user."""
    update_time: datetime


async def quiet_flows(
    conn: AsyncConnection,
    *,
    quiet_seconds: float,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[QuietFlow]:
    """Every tenant's running flows unchanged for ``quiet_seconds``, longest quiet first, after
    the keyset position ``after`` (update time, id)."""
    after_time, after_id = after or (None, None)
    rows = await fetch(conn, _QUIET, quiet_seconds, after_time, after_id, limit)
    return [QuietFlow(r[0], Tenant(r[1], r[2], r[3]), r[4]) for r in rows]


_STATUS = Sql("SELECT status FROM orchestrator.flows WHERE id = $1")


async def status_of(conn: AsyncConnection, flow_id: uuid.UUID) -> FlowStatus | None:
    value = await fetchval(conn, _STATUS, flow_id)
    return FlowStatus(value) if value is not None else None
