"""The inbox: a consumer records each message id in the transaction of its own change."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from flowpair_shared.errors import Validator
from flowpair_shared.names import parse_uuid
from flowpair_shared.tenancy import metadata_values

MESSAGE_ID_HEADER = "x-message-id"


def message_id_from(metadata: Iterable[tuple[str, str | bytes]] | None) -> uuid.UUID | None:
    """The relay's message id from call metadata; None for a direct (non-relay) call.

    InvalidArgument when it is not a UUID or is sent more than once."""
    values = metadata_values(metadata, MESSAGE_ID_HEADER)
    if not values:
        return None
    v = Validator()
    field = f"metadata.{MESSAGE_ID_HEADER}"
    if len(values) > 1:
        v.add(field, f"must be sent once, got {len(values)} times")
        v.raise_if_any()
    parsed = parse_uuid(values[0], field, v)
    v.raise_if_any()
    return parsed


async def first_delivery(conn: AsyncConnection, consumer: str, message_id: uuid.UUID) -> bool:
    """Record ``message_id`` for ``consumer``; False if it was recorded before (a redelivery).

    A concurrent duplicate blocks on the primary key until the first transaction ends, then
    sees the conflict: at most one of them ever applies the message.
    """
    result = await conn.execute(
        text(
            """
            INSERT INTO messaging.inbox (consumer, message_id) VALUES (:consumer, :id)
            ON CONFLICT DO NOTHING RETURNING 1
            """
        ),
        {"consumer": consumer, "id": message_id},
    )
    return result.first() is not None
