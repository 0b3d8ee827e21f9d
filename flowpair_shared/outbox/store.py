"""Writing to the outbox, and the operator's view of it (parked messages, re-queue)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

NOTIFY_CHANNEL = "flowpair_outbox"

# The per-(source, key) counter row is locked until the writing transaction ends, so two
# transactions writing for one flow are serialised and `seq` order is commit order. Reading
# by bigserial id would not give that: a lower id can commit after a higher one.
_INSERT = text(
    """
    WITH s AS (
      INSERT INTO messaging.outbox_sequences AS q (source, ordering_key, last_seq)
      VALUES (:source, :key, 1)
      ON CONFLICT (source, ordering_key) DO UPDATE SET last_seq = q.last_seq + 1
      RETURNING last_seq
    )
    INSERT INTO messaging.outbox
      (message_id, source, destination, method, message_type, ordering_key, seq, payload, headers)
    SELECT :message_id, :source, :destination, :method, :message_type, :key, s.last_seq,
           :payload, CAST(:headers AS jsonb)
    FROM s
    RETURNING seq
    """
)


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


class OutboxWriter:
    """Adds messages inside the caller's transaction; they exist only if it commits."""

    def __init__(self, conn: AsyncConnection, source: str) -> None:
        self._conn = conn
        self._source = source
        self._notified = False

    async def add(self, message: OutgoingMessage) -> int:
        """Write ``message``; return its sequence number within its ordering key."""
        seq = (
            await self._conn.execute(
                _INSERT,
                {
                    "message_id": message.message_id,
                    "source": self._source,
                    "destination": message.destination,
                    "method": message.method,
                    "message_type": message.payload.DESCRIPTOR.full_name,
                    "key": message.ordering_key,
                    "payload": message.payload.SerializeToString(),
                    "headers": json.dumps(dict(message.headers)),
                },
            )
        ).scalar_one()
        if not self._notified:
            # Delivered by PostgreSQL only at commit: relays wake exactly when there is work.
            await self._conn.execute(
                text("SELECT pg_notify(:channel, :source)"),
                {"channel": NOTIFY_CHANNEL, "source": self._source},
            )
            self._notified = True
        return int(seq)


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
