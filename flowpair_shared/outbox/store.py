"""Writing to the outbox, and the operator's view of it (parked messages, re-queue)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from flowpair_shared import tracing
from flowpair_shared.db import Sql, fetch, fetchval

NOTIFY_CHANNEL = "flowpair_outbox"


def outbox_ctes(first: int, *, when: str = "true") -> str:
    """``WITH`` clauses writing the messages of ``OutboxRows.args()`` (parameters ``$first``
    to ``$first + 7``), when the SQL condition ``when`` holds, and waking relays at commit.

    They name ``outbox_seq``, ``outbox_rows`` and ``outbox_notify``; the statement must read
    ``outbox_notify`` (a plain ``SELECT`` in a ``WITH`` runs only if read), for example
    ``(SELECT count(*) FROM outbox_notify)``. The notification is part of the statement
    rather than a round trip of its own; PostgreSQL delivers it at commit, once per
    transaction however often it was sent.

    The per-(source, key) counter row is locked until the writing transaction ends, so two
    transactions writing for one key are serialised and ``seq`` order is commit order. Reading
    by bigserial id would not give that: a lower id can commit after a higher one.
    """
    src, key, ids, dest, method, mtype, payload, headers = (f"${first + i}" for i in range(8))
    n = f"cardinality({ids}::uuid[])"
    return f"""
    outbox_seq AS (
      INSERT INTO messaging.outbox_sequences AS q (source, ordering_key, last_seq)
      SELECT {src}::text, {key}::uuid, {n} WHERE {n} > 0 AND ({when})
      ON CONFLICT (source, ordering_key) DO UPDATE SET last_seq = q.last_seq + EXCLUDED.last_seq
      RETURNING last_seq
    ),
    outbox_rows AS (
      INSERT INTO messaging.outbox
        (message_id, source, destination, method, message_type, ordering_key, seq, payload,
         headers)
      SELECT m.message_id, {src}::text, m.destination, m.method, m.message_type, {key}::uuid,
             s.last_seq - {n} + m.n, m.payload, m.headers
      FROM outbox_seq s,
           unnest({ids}::uuid[], {dest}::text[], {method}::text[], {mtype}::text[],
                  {payload}::bytea[], {headers}::jsonb[])
             WITH ORDINALITY AS m(message_id, destination, method, message_type, payload,
                                  headers, n)
      RETURNING seq
    ),
    outbox_notify AS (SELECT pg_notify('{NOTIFY_CHANNEL}', {src}::text) FROM outbox_seq)
    """


@dataclass(frozen=True, kw_only=True)
class OutgoingMessage:
    """A gRPC call to make on a peer once the current transaction commits."""

    destination: str
    """The peer's name in the relay's channel map, e.g. ``"discovery"``."""
    method: str
    """Full gRPC method path, e.g. ``/flowpair.v1.DiscoveryService/CreateChildFlow``."""
    payload: Message
    ordering_key: uuid.UUID
    """Messages with one key are delivered one at a time, in commit order (a flow id)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Metadata sent with the call (tenant headers; the trace context is added when the
    message is written, see ``OutboxRows.args``)."""
    message_id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True)
class OutboxRows:
    """Messages of one ordering key as the array parameters of one statement (``outbox_ctes``)."""

    source: str
    ordering_key: uuid.UUID
    messages: tuple[OutgoingMessage, ...]

    @classmethod
    def of(
        cls, source: str, ordering_key: uuid.UUID, messages: Sequence[OutgoingMessage]
    ) -> OutboxRows:
        if any(m.ordering_key != ordering_key for m in messages):
            raise ValueError("the messages of one statement share one ordering key")
        return cls(source, ordering_key, tuple(messages))

    def args(self) -> tuple[Any, ...]:
        ms = self.messages
        return (
            self.source,
            self.ordering_key,
            [m.message_id for m in ms],
            [m.destination for m in ms],
            [m.method for m in ms],
            [m.payload.DESCRIPTOR.full_name for m in ms],
            [m.payload.SerializeToString() for m in ms],
            # The trace context of the transaction writing the messages (the RPC's or the
            # phase job's span) travels with them: the relay's delivery and the peer's
            # handling continue that trace.
            [json.dumps(dict(tracing.with_context(m.headers))) for m in ms],
        )


_ADD = Sql(
    f"WITH {outbox_ctes(1)}"
    " SELECT (SELECT max(seq) FROM outbox_rows), (SELECT count(*) FROM outbox_notify)"
)


class OutboxWriter:
    """Adds messages inside the caller's transaction; they exist only if it commits."""

    def __init__(self, conn: AsyncConnection, source: str) -> None:
        self._conn = conn
        self._source = source

    @property
    def source(self) -> str:
        return self._source

    async def add(self, message: OutgoingMessage) -> int:
        """Write ``message``; return its sequence number within its ordering key."""
        rows = OutboxRows.of(self._source, message.ordering_key, [message])
        return int(await fetchval(self._conn, _ADD, *rows.args()))


@dataclass(frozen=True)
class UndeliveredMessage:
    """A message not delivered yet: waiting, being delivered, or parked (the relay gave up on
    it; it stays in the outbox, holding back its key, until re-queued)."""

    message_id: uuid.UUID
    source: str
    destination: str
    method: str
    ordering_key: uuid.UUID
    seq: int
    attempts: int
    rejections: int
    last_error: str | None
    created_at: datetime
    available_at: datetime
    parked_at: datetime | None
    delivering: bool
    """A relay holds its lease now."""
    requeues: int

    @property
    def call(self) -> str:
        """The method's own name, e.g. ``RunPhase``."""
        return self.method.rsplit("/", 1)[-1]


_UNDELIVERED = """
  o.message_id, o.source, o.destination, o.method, o.ordering_key, o.seq, o.attempts,
  o.rejections, o.last_error, o.created_at, o.available_at, o.parked_at,
  coalesce(o.lease_until > now(), false), o.requeues
"""
_OF_KEY = Sql(
    f"""
    SELECT {_UNDELIVERED} FROM messaging.outbox o
    WHERE o.ordering_key = $1 AND o.delivered_at IS NULL ORDER BY o.created_at, o.seq
    """
)
# Parked messages, oldest parked first, after a keyset position; the filters are optional.
_PARKED = Sql(
    f"""
    SELECT {_UNDELIVERED} FROM messaging.outbox o
    WHERE o.parked_at IS NOT NULL AND o.delivered_at IS NULL
      AND ($1::uuid IS NULL OR o.ordering_key = $1)
      AND ($2::text IS NULL OR o.destination = $2)
      AND ($3::text IS NULL OR o.source = $3)
      AND ($4::timestamptz IS NULL OR (o.parked_at, o.message_id) > ($4, $5::uuid))
    ORDER BY o.parked_at, o.message_id
    LIMIT $6
    """
)
# A fresh set of attempts for the parked messages a target names (one message, a key's, or
# all), and the relays woken at commit, in one statement.
_REQUEUE = Sql(
    f"""
    WITH requeued AS (
      UPDATE messaging.outbox o
      SET parked_at = NULL, rejections = 0, available_at = now(), requeues = o.requeues + 1
      WHERE o.parked_at IS NOT NULL AND o.delivered_at IS NULL
        AND ($1::uuid IS NULL OR o.message_id = $1)
        AND ($2::uuid IS NULL OR o.ordering_key = $2)
        AND ($3::text IS NULL OR o.destination = $3)
      RETURNING {_UNDELIVERED}
    ),
    woken AS (
      SELECT pg_notify('{NOTIFY_CHANNEL}', s.source)
      FROM (SELECT DISTINCT source FROM requeued) AS s
    )
    SELECT r.*, (SELECT count(*) FROM woken) FROM requeued r
    """
)


def _undelivered(row: Sequence[Any]) -> UndeliveredMessage:
    return UndeliveredMessage(*row[:14])


async def of_key(conn: AsyncConnection, ordering_key: uuid.UUID) -> list[UndeliveredMessage]:
    """The key's undelivered messages of every source, oldest first."""
    return [_undelivered(r) for r in await fetch(conn, _OF_KEY, ordering_key)]


async def list_parked(
    conn: AsyncConnection,
    *,
    source: str | None = None,
    ordering_key: uuid.UUID | None = None,
    destination: str | None = None,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 1000,
) -> list[UndeliveredMessage]:
    """Parked messages, oldest parked first, after the keyset position ``after``."""
    when, last = after or (None, None)
    rows = await fetch(conn, _PARKED, ordering_key, destination, source, when, last, limit)
    return [_undelivered(r) for r in rows]


async def requeue_parked(
    conn: AsyncConnection,
    *,
    message_id: uuid.UUID | None = None,
    ordering_key: uuid.UUID | None = None,
    destination: str | None = None,
) -> list[UndeliveredMessage]:
    """Give the parked messages that match a fresh set of attempts (all of them when no
    filter is given) and wake the relays; the messages re-queued."""
    rows = await fetch(conn, _REQUEUE, message_id, ordering_key, destination)
    return [_undelivered(r) for r in rows]


async def requeue(conn: AsyncConnection, message_id: uuid.UUID) -> bool:
    """Give one parked message a fresh set of attempts; True if it was parked."""
    return bool(await requeue_parked(conn, message_id=message_id))
