"""Which exceptions mean the database failed rather than the request or the code.

Two kinds matter to callers, who map them in one place (``grpc_errors.infrastructure_status``)
and never count them against a message or a phase:

* **unavailable**: PostgreSQL is down, restarting, refusing connections, out of connections,
  or the connection broke (refused or reset sockets, a backend terminated by an administrator
  or a crash, a pool that timed out waiting for a connection, a server that became read-only in
  a failover). Clients retry later: gRPC ``UNAVAILABLE``.
* **conflict**: a serialization failure or a deadlock; the transaction was rolled back and can
  simply run again: gRPC ``ABORTED``.
* **timeout**: PostgreSQL cancelled a statement that ran longer than the connection's
  ``statement_timeout`` (``db.create_engine``), usually while waiting for a lock or under
  overload: gRPC ``DEADLINE_EXCEEDED`` with reason ``DATABASE_STATEMENT_TIMEOUT``.

A session the server ended for idling in a transaction longer than
``idle_in_transaction_session_timeout`` is a broken connection: unavailable.

Errors are recognised through SQLAlchemy's wrappers (``.orig``, ``connection_invalidated``),
asyncpg's SQLSTATE codes and the exception chain, because the same failure surfaces as a raw
``OSError`` at connect, an asyncpg exception on a raw connection (COPY) or a SQLAlchemy
``DBAPIError`` elsewhere.
"""

from __future__ import annotations

import enum
import re

import asyncpg
import sqlalchemy.exc


class Failure(enum.Enum):
    UNAVAILABLE = "unavailable"
    CONFLICT = "conflict"
    TIMEOUT = "timeout"


# SQLSTATE classes and codes (PostgreSQL appendix A).
_UNAVAILABLE_CLASSES = ("08", "53")  # connection exception; insufficient resources
_UNAVAILABLE_CODES = frozenset(
    {
        "57P01",  # admin_shutdown (pg_terminate_backend, a fast shutdown)
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, shutting down, in recovery)
        "57P04",  # database_dropped
        "57P05",  # idle_session_timeout
        "25P03",  # idle_in_transaction_session_timeout: the server ended the session
        "25006",  # read_only_sql_transaction: connected to a standby after a failover
    }
)
_CONFLICT_CODES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available
    }
)
_TIMEOUT_CODES = frozenset({"57014"})  # query_canceled: statement_timeout (or an administrator)
_CLOSED = ("connection is closed", "connection was closed", "underlying connection is closed")
# asyncpg refusing a statement while its protocol is still consuming an error (ProtocolState 2)
# with no statement of its own in flight: the server sent an unsolicited FATAL (a PostgreSQL
# shutdown ending an idle pooled session) and the socket's close has not been read yet. Two
# callers sharing a connection get another error (no state number), a misuse, not this.
_BROKEN_PROTOCOL = re.compile(r"another operation \(2\) is in progress")


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo and len(seen) < 16:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        orig = getattr(e, "orig", None)
        todo.extend([orig if isinstance(orig, BaseException) else None, e.__cause__])
    return seen


def classify(error: BaseException) -> Failure | None:
    """The database failure ``error`` stands for, or None when it is not one.

    A builtin ``TimeoutError`` is a database failure here only when it comes from connecting;
    the caller decides first whether its own deadline expired.
    """
    for e in _chain(error):
        if isinstance(e, sqlalchemy.exc.DBAPIError) and e.connection_invalidated:
            return Failure.UNAVAILABLE
        if isinstance(e, sqlalchemy.exc.TimeoutError):  # the pool waited in vain
            return Failure.UNAVAILABLE
        sqlstate = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if isinstance(sqlstate, str):
            if sqlstate in _CONFLICT_CODES:
                return Failure.CONFLICT
            if sqlstate in _TIMEOUT_CODES:
                return Failure.TIMEOUT
            if sqlstate in _UNAVAILABLE_CODES or sqlstate[:2] in _UNAVAILABLE_CLASSES:
                return Failure.UNAVAILABLE
        if isinstance(e, asyncpg.exceptions.ConnectionDoesNotExistError):
            return Failure.UNAVAILABLE
        if isinstance(e, asyncpg.exceptions.InternalClientError) and _BROKEN_PROTOCOL.search(
            str(e)
        ):
            return Failure.UNAVAILABLE
        closable = asyncpg.exceptions.InterfaceError | sqlalchemy.exc.InterfaceError
        if isinstance(e, closable) and any(s in str(e) for s in _CLOSED):
            return Failure.UNAVAILABLE
        if isinstance(e, OSError):  # refused, reset, unreachable, DNS; TimeoutError included
            return Failure.UNAVAILABLE
    return None


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database is out of reach (see ``classify``)."""
    return classify(error) is Failure.UNAVAILABLE
