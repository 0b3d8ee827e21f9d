"""Writing to the outbox, and the operator's view of it (parked messages, re-queue)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from flowpair_shared.db import Sql, fetchval

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
    """Metadata sent with the call (tenant headers)."""
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
            [json.dumps(dict(m.headers)) for m in ms],
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
class ParkedMessage:
    """A message the relay gave up on; it stays in the outbox until re-queued."""

    message_id: uuid.UUID
    source: str
    method: str
    ordering_key: uuid.UUID
    seq: int
    attempts: int
    last_error: str | None
    parked_at: datetime


async def list_parked(conn: AsyncConnection, *, source: str | None = None) -> list[ParkedMessage]:
    rows = await conn.execute(
        text(
            """
            SELECT message_id, source, method, ordering_key, seq, attempts, last_error, parked_at
            FROM messaging.outbox
            WHERE parked_at IS NOT NULL AND delivered_at IS NULL
              AND (CAST(:source AS text) IS NULL OR source = :source)
            ORDER BY parked_at
            """
        ),
        {"source": source},
    )
    return [ParkedMessage(*row) for row in rows]


async def requeue(conn: AsyncConnection, message_id: uuid.UUID) -> bool:
    """Give a parked message a fresh set of attempts; True if it was parked."""
    result = await conn.execute(
        text(
            """
            UPDATE messaging.outbox
            SET parked_at = NULL, rejections = 0, available_at = now()
            WHERE message_id = :id AND parked_at IS NOT NULL AND delivered_at IS NULL
            RETURNING source
            """
        ),
        {"id": message_id},
    )
    row = result.first()
    if row is None:
        return False
    await conn.execute(
        text("SELECT pg_notify(:channel, :source)"),
        {"channel": NOTIFY_CHANNEL, "source": row[0]},
    )
    return True
