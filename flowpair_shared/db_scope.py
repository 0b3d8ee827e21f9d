"""The tenant of every database transaction, enforced by PostgreSQL row-level security.

Every tenant table has a policy comparing its ``(client_account_id, engagement_id)`` with the
transaction-local settings ``flowpair.client_account_id`` / ``flowpair.engagement_id``, and
the services' role cannot bypass it (migration 0004). ``install(engine)`` (done by
``db.create_engine``) makes every transaction on the engine begin with one statement setting
them from the context, sent in the same round trip as the ``BEGIN`` (``ScopedConnection``):

- an explicit scope entered with ``tenant(...)`` or ``system()`` (background work: the relay
  and the phase runner claim work across tenants in ``system()``, and the runner runs each
  job's handler in ``tenant(job)``), else
- the RPC's tenant (``tenancy.current()``, set by the interceptor for each call), else
- nothing: the transaction sees no tenant's rows, and cannot write any.

``system()`` passes only the policies of the tables background work claims from (the outbox
and the phase jobs) and, to read, lock and delete only, of the tables retention sweeps (the
inbox and the outbox sequences, migration 0012); every other table stays tenant-only even
there.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
import zlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowpair_shared import tenancy

log = logging.getLogger("flowpair.db")

ACCOUNT_SETTING = "flowpair.client_account_id"
ENGAGEMENT_SETTING = "flowpair.engagement_id"
SCOPE_SETTING = "flowpair.scope"

# asyncpg's parameter style; is_local = true: the settings end with the transaction, so a
# pooled connection never carries one transaction's tenant into the next.
_SET = (
    f"SELECT set_config('{ACCOUNT_SETTING}', $1, true), set_config('{ENGAGEMENT_SETTING}', $2,"
    f" true), set_config('{SCOPE_SETTING}', $3, true)"
)


@dataclass(frozen=True)
class Scope:
    """What one transaction may see: one tenant's rows, or (``system``) the shared queues."""

    client_account_id: uuid.UUID | None = None
    engagement_id: uuid.UUID | None = None
    system: bool = False

    def settings(self) -> tuple[str, str, str]:
        return (
            str(self.client_account_id or ""),
            str(self.engagement_id or ""),
            "system" if self.system else "tenant",
        )


class HasTenant(Protocol):
    """A tenant, or a row that belongs to one (a phase job, a child flow)."""

    @property
    def client_account_id(self) -> uuid.UUID: ...

    @property
    def engagement_id(self) -> uuid.UUID: ...


_explicit: ContextVar[Scope | None] = ContextVar("flowpair_db_scope", default=None)


@contextlib.contextmanager
def _entered(scope: Scope) -> Iterator[None]:
    token = _explicit.set(scope)
    try:
        yield
    finally:
        _explicit.reset(token)


def tenant(owner: HasTenant) -> contextlib.AbstractContextManager[None]:
    """Transactions begun inside see only ``owner``'s tenant (overrides the RPC's)."""
    return _entered(Scope(owner.client_account_id, owner.engagement_id))


def system() -> contextlib.AbstractContextManager[None]:
    """Transactions begun inside may claim shared work (outbox, phase jobs) of any tenant."""
    return _entered(Scope(system=True))


def current() -> Scope | None:
    """The scope the next transaction begun in this context gets; None: no tenant at all."""
    explicit = _explicit.get()
    if explicit is not None:
        return explicit
    try:
        rpc = tenancy.current()
    except LookupError:
        return None
    return Scope(rpc.client_account_id, rpc.engagement_id)


class ScopedConnection(asyncpg.Connection):  # type: ignore[misc]
    """An asyncpg connection whose next ``BEGIN`` also sets a transaction's scope: one round
    trip where a ``BEGIN`` and a ``SELECT set_config(...)`` would be two, on every transaction
    (``create_engine`` connects with it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.begin_with: str | None = None

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        extra = self.begin_with
        if extra is not None and not args and query.startswith("BEGIN"):
            # asyncpg's transaction start: "BEGIN [ISOLATION LEVEL ...];"
            self.begin_with = None
            query = f"{query} {extra}"
        result: str = await super().execute(query, *args, timeout=timeout)
        return result


def _on_begin(conn: Connection) -> None:
    scope = current()
    driver = conn.connection.driver_connection
    if isinstance(driver, ScopedConnection):
        # Sent with the transaction's BEGIN, which SQLAlchemy sends lazily with the first
        # statement (db.driver forces it for statements on the driver). Always assigned, so a
        # transaction that never began leaves nothing for the next one.
        driver.begin_with = _literal_set(scope) if scope is not None else None
    elif scope is not None:
        # Runs inside SQLAlchemy's begin (which prevents re-entering it): the first statement
        # of the transaction.
        conn.exec_driver_sql(_SET, scope.settings())


def _literal_set(scope: Scope) -> str:
    """``_SET`` with the scope's values written in: a simple query can carry several
    statements but no parameters. The values are UUIDs printed by ``uuid.UUID`` (or empty)
    and two fixed words, so nothing here comes from a caller's text."""
    account, engagement, kind = scope.settings()
    return (
        f"SELECT set_config('{ACCOUNT_SETTING}', '{account}', true),"
        f" set_config('{ENGAGEMENT_SETTING}', '{engagement}', true),"
        f" set_config('{SCOPE_SETTING}', '{kind}', true)"
    )


class Savepoints:
    """The savepoints of one transaction that applies a batch of messages, each message in a
    savepoint of its own and in its own tenant.

    Opening a savepoint, setting its tenant and releasing the previous message's savepoint are
    one round trip (``enter``): the previous one's release waits for the next message, or for
    the transaction's commit, which releases it anyway. The settings are undone with the
    savepoint if it rolls back, and replaced by the next one's.
    """

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._count = 0
        self._to_release: str | None = None

    async def enter(self) -> str:
        """A new savepoint in the context's scope; its name."""
        self._count += 1
        name = f"flowpair_message_{self._count}"
        release = f"RELEASE SAVEPOINT {self._to_release}; " if self._to_release else ""
        self._to_release = None
        raw = (await self._conn.get_raw_connection()).driver_connection
        assert raw is not None and raw.is_in_transaction()
        await raw.execute(f"{release}SAVEPOINT {name}; {_literal_set(current() or Scope())}")
        return name

    def keep(self, name: str) -> None:
        """The savepoint's work stays; it is released with the next message's round trip."""
        self._to_release = name

    async def undo(self, name: str) -> None:
        if self._conn.invalidated:
            # The connection broke (the database restarted, say): the whole transaction is
            # lost with it, and the caller's error, not this undo's, must say so.
            return
        raw = (await self._conn.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.execute(f"ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}")


async def ensure_begun(conn: AsyncConnection) -> None:
    """Make sure ``conn``'s transaction has begun on the server (with its scope): SQLAlchemy
    sends ``BEGIN`` only with its first statement, and statements sent on the driver before
    that would each commit on their own, outside the tenant's scope."""
    fairy = await conn.get_raw_connection()
    raw = fairy.driver_connection
    assert raw is not None
    if raw.is_in_transaction():
        return
    start = getattr(fairy.dbapi_connection, "_start_transaction", None)
    if start is not None:
        # SQLAlchemy's asyncpg adapter begins as it would for its own first statement: the
        # BEGIN alone (with the scope), and the adapter knows its transaction is open.
        await start()
    if not raw.is_in_transaction():
        await conn.exec_driver_sql("SELECT 1")


def install(engine: AsyncEngine) -> None:
    """Begin every transaction of ``engine`` with the context's scope."""
    event.listen(engine.sync_engine, "begin", _on_begin)
    event.listen(engine.sync_engine.pool, "checkin", _on_checkin)


def _on_checkin(dbapi_connection: Any, record: Any) -> None:
    driver = getattr(dbapi_connection, "driver_connection", None)
    if not isinstance(driver, ScopedConnection):
        return
    # A scope set for a transaction that never began must not reach whatever next sends a
    # BEGIN on this connection without SQLAlchemy's begin (the pool's pre-ping, say).
    driver.begin_with = None
    if not driver.is_closed() and transaction_left_open(driver):
        # The pool's rollback-on-return goes through SQLAlchemy's record of the transaction;
        # a transaction SQLAlchemy does not know of (a BEGIN cancelled on the wire after the
        # server ran it) would survive it, and every later "transaction" on the connection
        # would be a savepoint inside it whose commit commits nothing. Closing the session
        # rolls it back, and the pool opens a fresh one.
        # Soft: no I/O in the checkin (a cancelled close must not leave the record outside
        # the pool); the pool closes and replaces the connection at its next checkout.
        log.warning("a pooled connection came back inside a transaction; replacing it")
        record.invalidate(soft=True)


def transaction_left_open(driver: asyncpg.Connection) -> bool:
    """Whether ``driver``, returned to the pool (after its rollback), still has a transaction:
    open on the server, or begun as far as asyncpg knows (whose next ``transaction()`` would
    then be a savepoint)."""
    return bool(driver.is_in_transaction() or getattr(driver, "_top_xact", None) is not None)


# -- COPY under row-level security ----------------------------------------------------------

_TENANT_COLUMNS = ("client_account_id", "engagement_id")
# Scalar subqueries: evaluated once per statement, not once per row as column defaults are.
_TENANT_VALUES = (
    f"(SELECT nullif(current_setting('{ACCOUNT_SETTING}', true), '')::uuid),"
    f" (SELECT nullif(current_setting('{ENGAGEMENT_SETTING}', true), '')::uuid)"
)


async def copy_records(
    conn: AsyncConnection,
    table: str,
    columns: Sequence[str],
    records: Sequence[Sequence[Any]],
) -> None:
    """COPY ``records`` into ``table`` (``schema.name``) in the caller's transaction, as the
    transaction's tenant.

    PostgreSQL refuses COPY FROM into a table with row-level security, so the rows go to a
    staging table private to this session (a temporary table: no other connection can see
    it, and commit empties it) and on with one INSERT ... SELECT, which checks each row against
    the table's policy. The staging table is emptied after each batch so it stays small.
    """
    if not records:
        return
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    if not raw.is_in_transaction():
        # SQLAlchemy begins the driver's transaction lazily, at its first statement; without
        # it these statements would each commit on their own.
        raise RuntimeError("copy_records: the caller's transaction has not begun a statement")
    cols = ", ".join(columns)
    staging = f"flowpair_copy_{table.replace('.', '_')}_{zlib.crc32(cols.encode()):08x}"
    await raw.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS"
        f" AS SELECT {cols} FROM {table} WITH NO DATA"
    )
    await raw.copy_records_to_table(
        staging, schema_name="pg_temp", columns=list(columns), records=records
    )
    if set(_TENANT_COLUMNS) & set(columns):
        insert = f"INSERT INTO {table} ({cols}) SELECT {cols} FROM pg_temp.{staging}"
    else:
        insert = (
            f"INSERT INTO {table} ({', '.join(_TENANT_COLUMNS)}, {cols})"
            f" SELECT {_TENANT_VALUES}, {cols} FROM pg_temp.{staging}"
        )
    await raw.execute(insert)
    await raw.execute(f"TRUNCATE pg_temp.{staging}")


# -- the services' role ---------------------------------------------------------------------


async def refuse_rls_bypass(engine: AsyncEngine, service: str, *, allow_insecure: bool) -> None:
    """Exit unless the service's database role is bound by row-level security (not a
    superuser, no BYPASSRLS); FLOWPAIR_ALLOW_INSECURE=1 downgrades that to a loud warning."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT current_user, rolsuper OR rolbypassrls FROM pg_roles"
                    " WHERE rolname = current_user"
                )
            )
        ).one()
    user, bypasses = str(row[0]), bool(row[1])
    if not bypasses:
        return
    message = (
        f"{service}: the database role {user!r} bypasses row-level security (superuser or"
        " BYPASSRLS), so tenant isolation would rest on every query's WHERE alone. Connect as"
        " the role the migrations create (flowpair_app; see README, 'Database roles')"
    )
    if allow_insecure:
        log.warning("INSECURE: %s; starting anyway because FLOWPAIR_ALLOW_INSECURE=1", message)
        return
    raise SystemExit(f"{message}, or set FLOWPAIR_ALLOW_INSECURE=1 to start anyway.")
