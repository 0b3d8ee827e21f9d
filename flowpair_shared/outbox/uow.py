"""Unit of work: one transaction, rolled back unless ``commit()`` is called."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from flowpair_shared.outbox.store import OutboxWriter


class UnitOfWork:
    """``async with UnitOfWork(engine, source=...) as uow:`` then ``uow.conn``/``uow.outbox``.

    State changes and the outbox messages announcing them share this one transaction, so a
    message exists exactly when the change it announces does.
    """

    conn: AsyncConnection
    outbox: OutboxWriter

    def __init__(self, engine: AsyncEngine, *, source: str) -> None:
        self._engine = engine
        self._source = source
        self._tx: AsyncTransaction | None = None

    async def __aenter__(self) -> Self:
        self.conn = await self._engine.connect()
        self._tx = await self.conn.begin()
        self.outbox = OutboxWriter(self.conn, self._source)
        return self

    async def commit(self) -> None:
        assert self._tx is not None
        await self._tx.commit()
        self._tx = None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._tx is not None:
                await self._tx.rollback()
        finally:
            await self.conn.close()
