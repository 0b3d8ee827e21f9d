"""Unit of work: one transaction, rolled back unless ``commit()`` is called."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from flowpair_shared import db_scope
from flowpair_shared.db_scope import Savepoints
from flowpair_shared.outbox.batch import batch_connection
from flowpair_shared.outbox.store import OutboxWriter


class UnitOfWork:
    """``async with UnitOfWork(engine, source=...) as uow:`` then ``uow.conn``/``uow.outbox``.

    State changes and the outbox messages announcing them share this one transaction, so a
    message exists exactly when the change it announces does. Inside a batch of delivered
    messages (``batch.in_batch``) it is a savepoint of the batch's transaction instead:
    ``commit()`` keeps its work (the savepoint is released with the next message's first
    round trip, or by the batch's commit), and the batch commits them all at once.
    """

    conn: AsyncConnection
    outbox: OutboxWriter

    def __init__(self, engine: AsyncEngine, *, source: str) -> None:
        self._engine = engine
        self._source = source
        self._tx: AsyncTransaction | None = None
        self._savepoints: Savepoints | None = None
        self._savepoint: str | None = None

    @property
    def source(self) -> str:
        """The service writing: the outbox's ``source`` and the inbox's consumer."""
        return self._source

    async def __aenter__(self) -> Self:
        shared = batch_connection()
        if shared is not None:
            # A message of a batch: a savepoint in the batch's transaction, in its own tenant.
            self.conn, self._savepoints = shared
            self._savepoint = await self._savepoints.enter()
        else:
            self.conn = await self._engine.connect()
            try:
                self._tx = await self.conn.begin()
                # Repositories talk to the driver directly (db.driver): the transaction must
                # have begun on the server before their first statement.
                await db_scope.ensure_begun(self.conn)
            except BaseException:
                # __aexit__ does not run for a failed __aenter__ (a call cancelled during its
                # BEGIN): the connection goes back to the pool here, not at garbage collection.
                await self.conn.close()
                raise
        self.outbox = OutboxWriter(self.conn, self._source)
        return self

    async def commit(self) -> None:
        if self._savepoints is not None:
            assert self._savepoint is not None
            self._savepoints.keep(self._savepoint)
            self._savepoint = None
            return
        assert self._tx is not None
        await self._tx.commit()
        self._tx = None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._savepoints is not None:
            if self._savepoint is not None:
                await self._savepoints.undo(self._savepoint)
            return
        try:
            if self._tx is not None:
                await self._tx.rollback()
        finally:
            await self.conn.close()
