"""The inbox: a consumer records each message id in the transaction of its own change."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncConnection

from flowpair_shared.db import Sql, fetchrow, fetchval
from flowpair_shared.errors import Validator
from flowpair_shared.names import parse_uuid
from flowpair_shared.tenancy import Tenant, metadata_values

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


def inbox_cte(consumer: int, message_id: int) -> str:
    """A ``WITH`` clause ``inbox`` recording the message ``$message_id`` (NULL: a direct call,
    nothing to record) for the consumer ``$consumer``; the message is a first delivery when
    ``$message_id`` is NULL or ``EXISTS (SELECT 1 FROM inbox)``.

    A concurrent duplicate blocks on the primary key until the first transaction ends, then
    sees the conflict: at most one of them ever applies the message."""
    return f"""
    inbox AS (
      INSERT INTO messaging.inbox (consumer, message_id)
      SELECT ${consumer}::text, ${message_id}::uuid WHERE ${message_id}::uuid IS NOT NULL
      ON CONFLICT DO NOTHING RETURNING 1
    )
    """


def first_delivery_sql(message_id: int) -> str:
    """True when the message of ``inbox_cte`` is applied for the first time."""
    return f"(${message_id}::uuid IS NULL OR EXISTS (SELECT 1 FROM inbox))"


def record_and_lock_sql(table: str, alias: str, where: str) -> Sql:
    """One statement that records the message ``$5`` for the consumer ``$4`` (``inbox_cte``)
    and locks the row ``alias`` of ``table`` that ``where`` picks (the tenant in ``$1``,
    ``$2``, the row's key in ``$3``): no row when none matches, else whether this is the
    message's first delivery (``record_and_lock``)."""
    return Sql(
        f"WITH {inbox_cte(4, 5)} SELECT {first_delivery_sql(5)}"
        f" FROM {table} {alias} WHERE {where} FOR UPDATE OF {alias}"
    )


async def record_and_lock(
    conn: AsyncConnection,
    sql: Sql,
    tenant: Tenant,
    key: uuid.UUID,
    consumer: str,
    message_id: uuid.UUID | None,
) -> bool | None:
    """Run a ``record_and_lock_sql`` statement: None when its row does not exist, else whether
    the message is applied for the first time (the row is then locked by the transaction)."""
    row = await fetchrow(
        conn, sql, tenant.client_account_id, tenant.engagement_id, key, consumer, message_id
    )
    return None if row is None else bool(row[0])


_FIRST = Sql(f"WITH {inbox_cte(1, 2)} SELECT {first_delivery_sql(2)}")


async def first_delivery(conn: AsyncConnection, consumer: str, message_id: uuid.UUID) -> bool:
    """Record ``message_id`` for ``consumer``; False if it was recorded before (a redelivery)."""
    return bool(await fetchval(conn, _FIRST, consumer, message_id))
