"""Database URLs and engines: one engine per process, asyncpg underneath.

Every connection of an engine is protected on the server side (``create_engine``):

* ``statement_timeout`` (default 30 s): an RPC's statements take milliseconds; one that runs
  30 s is waiting on a lock or an overloaded server, and holding a pooled connection that long
  starves every other call. It is cancelled (SQLSTATE 57014) and the call answers
  DEADLINE_EXCEEDED (``dbfailures``). Phase jobs, which may legitimately run long statements
  (``ANALYZE``, set-based SQL over a million rows), lift it for their own transaction
  (``lift_timeouts``) and are bounded by their handler's timeout and lease instead.
* ``idle_in_transaction_session_timeout`` (default 60 s): a transaction left open with
  nothing running holds row locks and a connection; the longest legitimate gap inside a
  service transaction is a relay's delivery call (10 s) or an upload waiting for the client's
  next chunk, so a minute ends only sessions that were abandoned (a stuck task, a stalled
  uploader). The server terminates the session (SQLSTATE 25P03): UNAVAILABLE.
* TCP keepalives on both ends (``tcp_keepalives_*`` for the server's side, ``SO_KEEPALIVE``
  on the client's socket): a peer that vanished without closing the connection (a host
  crash, a dropped network path) is noticed in about 2 minutes instead of the kernel's
  2 hours, so its backend, locks and pooled connection are freed.

The pool waits at most ``pool_timeout`` (default 5 s) for a free connection; then the call
fails UNAVAILABLE at once instead of hanging until the client's deadline.

Two ways to run SQL, one per layer: SQLAlchemy owns connections, the pool and transaction
boundaries (``UnitOfWork``, ``engine.connect()``); the repositories of the message hot path
(flows, child flows, the outbox and inbox) run their statements on the transaction's asyncpg
connection (``driver``) with the ``Sql``/``fetch*`` helpers below. A profile of a burst of
flows showed each statement through SQLAlchemy ``text()`` costing about as much event-loop
time as the socket write itself (compiling, the greenlet switch, the result proxy); asyncpg
keeps its own prepared-statement cache per connection, so a hot statement is one round trip.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from flowpair_shared import db_scope

APP_ROLE = "flowpair_app"

STATEMENT_TIMEOUT = 30.0
"""Seconds a service statement may run (0: no limit); FLOWPAIR_DB_STATEMENT_TIMEOUT."""
IDLE_IN_TRANSACTION_TIMEOUT = 60.0
"""Seconds a session may idle inside a transaction (0: no limit);
FLOWPAIR_DB_IDLE_IN_TRANSACTION_TIMEOUT."""
POOL_TIMEOUT = 5.0
"""Seconds a call waits for a pooled connection; FLOWPAIR_DB_POOL_TIMEOUT_SECONDS."""
CONNECT_TIMEOUT = 10.0
"""Seconds to open a connection (asyncpg's own default is 60)."""

# Idle 60 s before the first probe, then every 10 s, 6 unanswered probes: a dead peer is
# noticed after about 2 minutes.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 60, 10, 6


def sqlalchemy_url(url: str) -> str:
    """``postgres://`` or ``postgresql://`` → ``postgresql+asyncpg://`` (others unchanged)."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got {url.split(':', 1)[0]}://...")


def asyncpg_dsn(url: str) -> str:
    """The same URL as plain asyncpg wants it (for LISTEN connections)."""
    return "postgresql://" + sqlalchemy_url(url)[len("postgresql+asyncpg://") :]


def app_role_url(url: str, password: str | None = None) -> str:
    """The same server and database as ``url`` (the migrations' owner), as the services' role
    ``flowpair_app``; with ``password`` if given, else the URL's own."""
    parts = urlsplit(url)
    _, _, userinfo_host = parts.netloc.rpartition("@")
    secret = quote(password, safe="") if password is not None else parts.password
    netloc = APP_ROLE + (f":{secret}" if secret is not None else "") + "@" + userinfo_host
    return urlunsplit(parts._replace(netloc=netloc))


def _ms(seconds: float) -> str:
    """A duration as PostgreSQL's milliseconds setting (0 disables; never rounds to 0)."""
    return "0" if seconds <= 0 else str(max(1, round(seconds * 1000)))


def server_settings(
    *,
    application_name: str,
    statement_timeout: float = STATEMENT_TIMEOUT,
    idle_in_transaction_timeout: float = IDLE_IN_TRANSACTION_TIMEOUT,
) -> dict[str, str]:
    """The settings every service connection starts with (see the module's docstring)."""
    return {
        "application_name": application_name,
        "statement_timeout": _ms(statement_timeout),
        "idle_in_transaction_session_timeout": _ms(idle_in_transaction_timeout),
        "tcp_keepalives_idle": str(KEEPALIVE_IDLE),
        "tcp_keepalives_interval": str(KEEPALIVE_INTERVAL),
        "tcp_keepalives_count": str(KEEPALIVE_COUNT),
    }


def client_keepalive(dbapi_connection: Any, _record: Any) -> None:
    """Turn on TCP keepalives on a new connection's socket (asyncpg has no option for it);
    Unix sockets need none."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    transport = getattr(driver, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
    ):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def create_engine(
    url: str,
    *,
    pool_size: int = 20,
    application_name: str = "flowpair",
    statement_timeout: float = STATEMENT_TIMEOUT,
    idle_in_transaction_timeout: float = IDLE_IN_TRANSACTION_TIMEOUT,
    pool_timeout: float = POOL_TIMEOUT,
) -> AsyncEngine:
    """The process's engine; timeouts in seconds, 0 for none (see the module's docstring)."""
    engine = create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        # Overflow connections are closed on check-in: under steady load that means a new
        # PostgreSQL backend per transaction. A fixed pool queues instead, for at most
        # pool_timeout: then the call fails fast (UNAVAILABLE) rather than hang.
        max_overflow=0,
        pool_timeout=pool_timeout,
        pool_recycle=1800,
        connect_args={
            "timeout": CONNECT_TIMEOUT,
            "connection_class": db_scope.ScopedConnection,
            "server_settings": server_settings(
                application_name=application_name,
                statement_timeout=statement_timeout,
                idle_in_transaction_timeout=idle_in_transaction_timeout,
            ),
        },
    )
    event.listen(engine.sync_engine, "connect", client_keepalive)
    db_scope.install(engine)  # every transaction is scoped to its tenant (row-level security)
    return engine


async def lift_timeouts(conn: AsyncConnection) -> None:
    """No statement or idle-in-transaction timeout for the rest of ``conn``'s transaction:
    for phase jobs, whose long statements and long computations between statements are
    bounded by their handler's timeout and their lease instead."""
    await conn.execute(
        text(
            "SELECT set_config('statement_timeout', '0', true),"
            " set_config('idle_in_transaction_session_timeout', '0', true)"
        )
    )


# -- asyncpg on the hot paths ---------------------------------------------------------------


@dataclass(frozen=True)
class Sql:
    """One statement in asyncpg's dialect (``$1``, ``$2``, ...), prepared once per connection
    by asyncpg's statement cache."""

    text: str


async def driver(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under ``conn``, inside ``conn``'s transaction (begun here if
    ``conn`` has none yet, as SQLAlchemy's own first statement would: in the context's tenant
    scope, ``db_scope``).

    SQLAlchemy begins the driver's transaction lazily, at its first statement, and sends
    nothing at begin when there is no scope; a statement sent on the driver before that would
    run outside the transaction (and outside the tenant's scope), so the begin is forced."""
    if not conn.in_transaction():
        await conn.begin()
    await db_scope.ensure_begun(conn)
    raw = (await conn.get_raw_connection()).driver_connection
    assert isinstance(raw, asyncpg.Connection)
    return raw


async def fetch(conn: AsyncConnection, sql: Sql, *args: Any) -> list[asyncpg.Record]:
    return list(await (await driver(conn)).fetch(sql.text, *args))


async def fetchrow(conn: AsyncConnection, sql: Sql, *args: Any) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await (await driver(conn)).fetchrow(sql.text, *args)
    return row


async def fetchval(conn: AsyncConnection, sql: Sql, *args: Any) -> Any:
    return await (await driver(conn)).fetchval(sql.text, *args)
