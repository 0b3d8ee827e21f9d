"""Protection under overload and abandonment: server-side timeouts on every service connection,
uploads that cannot take the whole pool, back-pressure (RESOURCE_EXHAUSTED) instead of hangs."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
import sqlalchemy.exc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import text

from flowpair.v1 import discovery_pb2, orchestrator_pb2
from flowpair_shared import db_scope
from flowpair_shared.db import (
    app_role_url,
    client_keepalive,
    create_engine,
    lift_timeouts,
    server_settings,
)
from flowpair_shared.dbfailures import Failure, classify
from flowpair_shared.grpc_errors import infrastructure_status
from flowpair_shared.settings import Settings
from tests.support import Stack, discovery_flow, eventually, fetchval, md, new_tenant

CSV = b"hostname,ip_address\nweb-01,10.0.0.1\nweb-02,10.0.0.2\n"


def reason(error: grpc.aio.AioRpcError) -> str:
    """The ErrorInfo reason of a failed call ('' without one)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""


def test_the_settings_read_the_protection_variables() -> None:
    s = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://x@localhost/db",
            "FLOWPAIR_DB_STATEMENT_TIMEOUT": "2.5",
            "FLOWPAIR_DB_IDLE_IN_TRANSACTION_TIMEOUT": "0",
            "FLOWPAIR_DB_POOL_TIMEOUT_SECONDS": "1",
            "FLOWPAIR_MAX_CONCURRENT_UPLOADS": "2",
            "FLOWPAIR_MAX_CONCURRENT_RPCS": "64",
        }
    )
    assert (s.db_statement_timeout, s.db_idle_in_transaction_timeout, s.db_pool_timeout) == (
        2.5,
        0.0,
        1.0,
    )
    assert (s.max_concurrent_uploads, s.max_concurrent_rpcs) == (2, 64)
    defaults = Settings.from_env({"DATABASE_URL": "postgresql://x@localhost/db"})
    assert (defaults.db_statement_timeout, defaults.db_idle_in_transaction_timeout) == (30, 60)
    with pytest.raises(SystemExit, match="FLOWPAIR_DB_STATEMENT_TIMEOUT"):
        Settings.from_env(
            {"DATABASE_URL": "postgresql://x@h/d", "FLOWPAIR_DB_STATEMENT_TIMEOUT": "-1"}
        )


def test_timeouts_map_to_clear_statuses() -> None:
    cancelled = asyncpg.exceptions.QueryCanceledError("canceling statement: statement timeout")
    assert classify(cancelled) is Failure.TIMEOUT
    status = infrastructure_status(cancelled)
    assert status is not None and status.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "statement timeout" in status.details
    idle = asyncpg.exceptions.IdleInTransactionSessionTimeoutError("terminating connection")
    assert classify(idle) is Failure.UNAVAILABLE


def test_a_driver_still_reading_an_ended_session_is_unavailable_a_busy_one_is_a_bug() -> None:
    # Seen in make chaos as PostgreSQL restarted: a statement started on a pooled connection
    # whose protocol was still consuming the server's FATAL (state 2) answered INTERNAL.
    ended = asyncpg.exceptions.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress"
    )
    assert classify(ended) is Failure.UNAVAILABLE
    busy = asyncpg.exceptions.InternalClientError(
        "cannot switch to state 15; another operation (12) is in progress"
    )
    assert classify(busy) is None


def test_keepalives_on_both_ends_of_a_tcp_connection() -> None:
    # The server's side: PostgreSQL probes a silent client (set at connect, per session).
    settings = server_settings(application_name="x")
    assert settings["tcp_keepalives_idle"] == "60"
    assert settings["tcp_keepalives_interval"] == "10"
    assert settings["tcp_keepalives_count"] == "6"

    # The client's side: the engine's connect hook turns them on for a TCP socket.
    class Transport:
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def get_extra_info(self, name: str) -> socket.socket:
            assert name == "socket"
            return self.sock

    class Driver:
        def __init__(self, sock: socket.socket) -> None:
            self._transport = Transport(sock)

    class Adapted:
        def __init__(self, sock: socket.socket) -> None:
            self.driver_connection = Driver(sock)

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
        client_keepalive(Adapted(sock), None)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60


async def test_service_connections_carry_the_timeouts_and_phases_lift_them(
    database_url: str,
) -> None:
    engine = create_engine(app_role_url(database_url), pool_size=1)
    try:
        async with engine.connect() as conn:
            shown = (
                await conn.execute(
                    text(
                        "SELECT current_setting('statement_timeout'),"
                        " current_setting('idle_in_transaction_session_timeout')"
                    )
                )
            ).one()
            assert tuple(shown) == ("30s", "1min")
        async with engine.begin() as conn:
            await lift_timeouts(conn)  # what the phase runner does for a phase's transaction
            assert await conn.scalar(text("SHOW statement_timeout")) == "0"
            assert await conn.scalar(text("SHOW idle_in_transaction_session_timeout")) == "0"
        async with engine.connect() as conn:  # only for that transaction
            assert await conn.scalar(text("SHOW statement_timeout")) == "30s"
    finally:
        await engine.dispose()


async def test_a_session_idle_in_a_transaction_is_ended_by_the_server(database_url: str) -> None:
    engine = create_engine(
        app_role_url(database_url),
        pool_size=1,
        idle_in_transaction_timeout=0.5,
        application_name="flowpair-idle-test",
    )
    try:
        with db_scope.system():
            async with engine.connect() as conn:
                await conn.begin()
                pid = await conn.scalar(text("SELECT pg_backend_pid()"))

                async def ended() -> bool:
                    count = await fetchval(
                        database_url, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
                    )
                    return bool(count == 0)

                # The transaction is left open and nothing runs: the server ends the session.
                await eventually(ended)
                with pytest.raises(sqlalchemy.exc.DBAPIError) as err:
                    await conn.execute(text("SELECT 1"))
                assert classify(err.value) is Failure.UNAVAILABLE
                status = infrastructure_status(err.value)
                assert status is not None and status.code == grpc.StatusCode.UNAVAILABLE
                with contextlib.suppress(Exception):
                    await conn.rollback()
        # The pool replaces the dead connection.
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()


async def test_a_statement_past_the_statement_timeout_is_deadline_exceeded(stack: Stack) -> None:
    stack.overrides = {"db_statement_timeout": 0.3}
    await stack.start_orchestrator()
    tenant = new_tenant()
    client = stack.orchestrator()
    created = await client.CreateFlow(
        orchestrator_pb2.CreateFlowRequest(flow=discovery_flow()), metadata=md(tenant)
    )
    owner = await asyncpg.connect(stack.database_url)
    try:
        async with owner.transaction():
            # Another session holds the table: GetFlow's read waits for the lock until the
            # service's statement timeout cancels it (the client's deadline is far away).
            await owner.execute("LOCK TABLE orchestrator.flows IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await client.GetFlow(
                    orchestrator_pb2.GetFlowRequest(name=created.flow.name),
                    metadata=md(tenant),
                    timeout=60,
                )
    finally:
        await owner.close()
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, err.value.details()
    assert reason(err.value) == "DATABASE_STATEMENT_TIMEOUT"
    assert "statement timeout" in (err.value.details() or "")
    # The connection went back to the pool intact: the next call answers.
    got = await client.GetFlow(
        orchestrator_pb2.GetFlowRequest(name=created.flow.name), metadata=md(tenant)
    )
    assert got.flow.name == created.flow.name


class HeldUpload:
    """An upload that sends its metadata and first chunk, then waits until released."""

    def __init__(self, stack: Stack, tenant: object) -> None:
        self.release = asyncio.Event()
        self.import_id = uuid.uuid4()
        self.call = stack.discovery().UploadImportData(self._requests(), metadata=md(tenant))  # type: ignore[arg-type]

    async def _requests(self) -> AsyncIterator[discovery_pb2.UploadImportDataRequest]:
        yield discovery_pb2.UploadImportDataRequest(
            metadata=discovery_pb2.ImportMetadata(
                import_id=str(self.import_id), file_name="held.csv"
            )
        )
        yield discovery_pb2.UploadImportDataRequest(chunk=CSV[:30])
        await self.release.wait()
        yield discovery_pb2.UploadImportDataRequest(chunk=CSV[30:])


async def streaming(database_url: str) -> bool:
    """Whether an upload holds its transaction open, waiting for the client's next chunk."""
    count = await fetchval(
        database_url,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'flowpair-discovery'"
        " AND state = 'idle in transaction' AND query LIKE '%FROM discovery.imports WHERE%'",
    )
    return bool(count)


async def test_uploads_cannot_take_the_pool(stack: Stack) -> None:
    # Two connections, one upload at a time: the other connection stays for everything else.
    stack.overrides = {"db_pool_size": 2, "max_concurrent_uploads": 1}
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    done = await stack.upload(tenant, CSV)
    created = await stack.orchestrator().CreateFlow(
        orchestrator_pb2.CreateFlowRequest(flow=discovery_flow()), metadata=md(tenant)
    )

    first = HeldUpload(stack, tenant)
    await eventually(lambda: streaming(stack.database_url))
    # A second upload is refused at once, even though its client would keep streaming.
    second = HeldUpload(stack, tenant)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await second.call
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
    assert reason(err.value) == "TOO_MANY_UPLOADS"
    second.release.set()

    # Unary calls answer while the upload streams, several at once on the one free connection.
    discovery = stack.discovery()
    answers = await asyncio.gather(
        *(
            discovery.GetImport(
                discovery_pb2.GetImportRequest(name=done.name), metadata=md(tenant), timeout=30
            )
            for _ in range(5)
        )
    )
    assert {a.data_import.row_count for a in answers} == {2}
    orchestrator = stack.orchestrator()
    got = await orchestrator.GetFlow(
        orchestrator_pb2.GetFlowRequest(name=created.flow.name), metadata=md(tenant), timeout=30
    )
    assert got.flow.name == created.flow.name
    listed = await orchestrator.ListFlows(
        orchestrator_pb2.ListFlowsRequest(), metadata=md(tenant), timeout=30
    )
    assert created.flow.name in {f.name for f in listed.flows}

    first.release.set()
    uploaded = (await first.call).data_import
    assert uploaded.row_count == 2
    # The slot is free again.
    assert (await stack.upload(tenant, CSV)).row_count == 2


async def test_past_the_rpc_limit_calls_are_refused_at_once(stack: Stack) -> None:
    stack.overrides = {"max_concurrent_rpcs": 1}
    await stack.start_discovery()
    tenant = new_tenant()
    held = HeldUpload(stack, tenant)  # one call in flight on the public port
    await eventually(lambda: streaming(stack.database_url))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.discovery().GetImport(
            discovery_pb2.GetImportRequest(name=f"imports/{uuid.uuid4()}"),
            metadata=md(tenant),
            timeout=30,
        )
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
    held.release.set()
    assert (await held.call).data_import.row_count == 2
