"""The tenant of every database transaction, enforced by PostgreSQL row-level security.

Every tenant table has a policy comparing its ``(client_account_id, engagement_id)`` with the
transaction-local settings ``flowpair.client_account_id`` / ``flowpair.engagement_id``, and
the services' role cannot bypass it (migration 0004). ``install(engine)`` (done by
``db.create_engine``) makes every transaction on the engine begin with one statement setting
them from the context:

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


def _on_begin(conn: Connection) -> None:
    scope = current()
    if scope is not None:
        # Runs inside SQLAlchemy's begin (which prevents re-entering it): the first statement
        # of the transaction.
        conn.exec_driver_sql(_SET, scope.settings())


async def enter_savepoint(conn: AsyncConnection) -> None:
    """Give a savepoint the context's scope: a batch of messages shares one transaction, and
    each message (in a savepoint of its own) is another tenant's. The settings are undone
    with the savepoint if it rolls back, and replaced by the next one's."""
    scope = current() or Scope()
    await conn.exec_driver_sql(_SET, scope.settings())


def install(engine: AsyncEngine) -> None:
    """Begin every transaction of ``engine`` with the context's scope."""
    event.listen(engine.sync_engine, "begin", _on_begin)


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
