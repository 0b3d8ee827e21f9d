"""A pooled connection never carries one caller's transaction into the next caller's.

The fault found by the fuzz run: an RPC cancelled (deadline, client gone) while its ``BEGIN``
was on the wire. The server ran the ``BEGIN``; the driver recorded a transaction that failed
to start and SQLAlchemy none at all, so the pool's rollback-on-return did nothing. Every later
transaction on that connection then ran as a savepoint inside the orphan, and its "commit"
only released the savepoint: acknowledged writes that no other session could see, and row
locks held until the idle-in-transaction timeout ended the session and rolled them all back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from flowpair_shared import db, db_scope
from flowpair_shared.outbox.uow import UnitOfWork
from tests.stalling_proxy import StallingProxy, stalling_proxy
from tests.support import fetch, fetchval

pytestmark = pytest.mark.timeout(60)


@contextlib.asynccontextmanager
async def _engine_behind_proxy(
    database_url: str,
) -> AsyncIterator[tuple[AsyncEngine, StallingProxy]]:
    await fetch(database_url, "CREATE TABLE hygiene (x int)")
    async with stalling_proxy(database_url) as proxy:
        # One connection: whatever the cancelled call leaves on it, the next call gets.
        engine = db.create_engine(
            proxy.url_through(), pool_size=1, pool_timeout=2, application_name="pool-hygiene"
        )
        try:
            await _insert(engine, 0)  # connected and initialised: the next BEGIN is a call's
            await fetch(database_url, "DELETE FROM hygiene")
            yield engine, proxy
        finally:
            await engine.dispose()


async def _insert(engine: AsyncEngine, value: int, *, on_driver: bool = False) -> None:
    """One committed insert, through SQLAlchemy or (as the hot paths do) the driver."""
    with db_scope.system():
        async with engine.connect() as conn:
            if on_driver:
                await db.fetchval(conn, db.Sql("INSERT INTO hygiene (x) VALUES ($1)"), value)
            else:
                await conn.execute(text("INSERT INTO hygiene (x) VALUES (:x)"), {"x": value})
            await conn.commit()


async def _insert_in_unit_of_work(engine: AsyncEngine, value: int) -> None:
    """The same insert as a service's unit of work makes it (the hot paths' way in)."""
    with db_scope.system():
        async with UnitOfWork(engine, source="pool-hygiene") as uow:
            await db.fetchval(uow.conn, db.Sql("INSERT INTO hygiene (x) VALUES ($1)"), value)
            await uow.commit()


async def _cancel_during_begin(
    engine: AsyncEngine, proxy: StallingProxy, on_driver: bool | None
) -> None:
    """An insert (through SQLAlchemy, the driver, or with None a unit of work) cancelled
    while the server's answer to its BEGIN is held."""
    proxy.arm(b"BEGIN")
    insert = (
        _insert_in_unit_of_work(engine, 1)
        if on_driver is None
        else _insert(engine, 1, on_driver=on_driver)
    )
    call = asyncio.create_task(insert)
    await asyncio.wait_for(proxy.seen.wait(), 10)
    await asyncio.sleep(0.05)  # the BEGIN has reached the server; its answer is held
    call.cancel()
    await asyncio.sleep(0.05)
    proxy.release()
    with pytest.raises(asyncio.CancelledError):
        await call


ON_DRIVER = pytest.mark.parametrize(
    "on_driver", [False, True, None], ids=["sqlalchemy", "driver", "unit-of-work"]
)


@ON_DRIVER
async def test_a_call_cancelled_during_begin_leaves_no_transaction_for_the_next(
    database_url: str, on_driver: bool | None
) -> None:
    async with _engine_behind_proxy(database_url) as (engine, proxy):
        await _cancel_during_begin(engine, proxy, on_driver)
        await _insert(engine, 2, on_driver=bool(on_driver))
        await _insert(engine, 3, on_driver=not on_driver)

        # What the next callers were told is committed, another session sees.
        seen = [r["x"] for r in await fetch(database_url, "SELECT x FROM hygiene ORDER BY x")]
        assert seen == [2, 3]
        open_transactions = await fetchval(
            database_url,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pool-hygiene'"
            " AND state LIKE 'idle in transaction%'",
        )
        assert open_transactions == 0


@ON_DRIVER
async def test_the_pool_still_serves_after_many_cancelled_calls(
    database_url: str, on_driver: bool | None
) -> None:
    async with _engine_behind_proxy(database_url) as (engine, proxy):
        for _ in range(5):
            await _cancel_during_begin(engine, proxy, on_driver)
        for value in range(10):
            await _insert(engine, value, on_driver=value % 2 == 0)
        assert await fetchval(database_url, "SELECT count(*) FROM hygiene") == 10


async def test_undoing_a_savepoint_of_a_broken_connection_keeps_the_real_error(
    database_url: str,
) -> None:
    """A batch's message whose connection broke: undoing its savepoint must not replace the
    database failure (which fails the whole batch, to be redelivered) with an error of its own
    (which the batch took for a bug in that one message)."""
    async with _engine_behind_proxy(database_url) as (engine, _proxy), engine.connect() as conn:
        await db.fetchval(conn, db.Sql("SELECT 1"))  # begun
        savepoints = db_scope.Savepoints(conn)
        name = await savepoints.enter()
        pid = await db.fetchval(conn, db.Sql("SELECT pg_backend_pid()"))
        await fetch(database_url, f"SELECT pg_terminate_backend({int(pid)})")
        with pytest.raises(DBAPIError) as broken:
            await conn.execute(text("SELECT 1"))
        assert broken.value.connection_invalidated
        await savepoints.undo(name)
