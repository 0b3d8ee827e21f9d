"""Test helpers: real databases, real servers on free ports, real clients."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from discovery_svc.phases.base import PhaseHandler
from discovery_svc.service_layer.runner import PhaseRunner
from flowpair.internal.v1 import child_flow_service_pb2_grpc, flow_event_service_pb2_grpc
from flowpair.v1 import (
    discovery_pb2,
    discovery_pb2_grpc,
    flow_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
)
from flowpair_shared.auth.principal import Role
from flowpair_shared.db import app_role_url, asyncpg_dsn
from flowpair_shared.domain import Phase
from flowpair_shared.outbox import RelaySettings
from flowpair_shared.server import ServiceApp
from flowpair_shared.settings import Settings
from flowpair_shared.tenancy import Tenant
from tests.credentials import bearer, credentials, internal_channel

if TYPE_CHECKING:
    from flowpair.internal.v1.child_flow_service_pb2_grpc import ChildFlowServiceAsyncStub
    from flowpair.internal.v1.flow_event_service_pb2_grpc import FlowEventServiceAsyncStub
    from flowpair.v1.discovery_pb2_grpc import DiscoveryServiceAsyncStub
    from flowpair.v1.orchestrator_pb2_grpc import OrchestratorServiceAsyncStub

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")

# A crashed relay's claims wait out the lease: short here, so crash tests settle quickly.
FAST_RELAY = RelaySettings(
    poll_interval=0.5,
    backoff_base=0.05,
    transient_backoff_max=0.3,
    delivery_timeout=4.0,
    lease_seconds=5.0,
)


def discovery_flow(
    *, display_name: str = "", import_id: uuid.UUID | None = None, allow_concurrent: bool = True
) -> orchestrator_pb2.Flow:
    """A discovery flow to create; by default on an import nobody uploaded (DATA_IMPORT then
    fails with IMPORT_NOT_FOUND), and allowed beside the engagement's other flows."""
    flow = orchestrator_pb2.Flow(
        type=flow_pb2.FLOW_TYPE_DISCOVERY,
        display_name=display_name,
        allow_concurrent=allow_concurrent,
    )
    flow.data_import = f"imports/{import_id or uuid.uuid4()}"
    return flow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def new_tenant() -> Tenant:
    return Tenant(uuid.uuid4(), uuid.uuid4(), uuid.uuid4())


def md(tenant: Tenant, role: Role = Role.OPERATOR) -> tuple[tuple[str, str], ...]:
    """A public call's metadata: the tenant headers and a bearer token (a JWT for the tenant's
    user, client account and ``role``)."""
    return (*tenant.metadata().items(), ("authorization", f"Bearer {bearer(tenant, role)}"))


def peer_md(tenant: Tenant) -> tuple[tuple[str, str], ...]:
    """An internal call's metadata, as the peer's relay sends it: tenant headers only."""
    return tuple(tenant.metadata().items())


async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 20.0, interval: float = 0.05
) -> T:
    """Poll ``check`` until it returns a truthy value; a liveness bound, not a speed test."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value {result!r}")
        await asyncio.sleep(interval)


@dataclass
class Stack:
    """Both services' addresses and settings, for one test database."""

    database_url: str
    orchestrator_port: int = field(default_factory=free_port)
    discovery_port: int = field(default_factory=free_port)
    orchestrator_internal_port: int = field(default_factory=free_port)
    discovery_internal_port: int = field(default_factory=free_port)
    relay: RelaySettings = FAST_RELAY
    apps: list[ServiceApp] = field(default_factory=list)
    channels: list[grpc.aio.Channel] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    """Settings fields to change for this stack (e.g. ``max_concurrent_uploads``)."""

    def settings(self) -> Settings:
        return replace(self._settings(), **self.overrides)

    def _settings(self) -> Settings:
        return Settings(
            # The services' role, bound by row-level security; tests read as the owner.
            database_url=app_role_url(self.database_url),
            orchestrator_listen=f"127.0.0.1:{self.orchestrator_port}",
            discovery_listen=f"127.0.0.1:{self.discovery_port}",
            orchestrator_internal_listen=f"127.0.0.1:{self.orchestrator_internal_port}",
            discovery_internal_listen=f"127.0.0.1:{self.discovery_internal_port}",
            orchestrator_internal_target=f"127.0.0.1:{self.orchestrator_internal_port}",
            discovery_internal_target=f"127.0.0.1:{self.discovery_internal_port}",
            db_pool_size=20,
            shutdown_grace=1.0,
            phase_lease_seconds=3.0,
            # In this process, phases run on the serving loop (tests hold the runner back and
            # give it handlers of their own); the services' processes run phase workers.
            phase_workers=0,
            phase_stop_grace_seconds=0.0,
            relay=self.relay,
            **credentials().settings,
        )

    def env(self) -> dict[str, str]:
        s = self.settings()
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": s.database_url,
            "FLOWPAIR_ORCHESTRATOR_LISTEN": s.orchestrator_listen,
            "FLOWPAIR_DISCOVERY_LISTEN": s.discovery_listen,
            "FLOWPAIR_ORCHESTRATOR_INTERNAL_LISTEN": s.orchestrator_internal_listen,
            "FLOWPAIR_DISCOVERY_INTERNAL_LISTEN": s.discovery_internal_listen,
            **credentials().env,
            "FLOWPAIR_RELAY_POLL_SECONDS": str(s.relay.poll_interval),
            "FLOWPAIR_RELAY_DELIVERY_TIMEOUT_SECONDS": str(s.relay.delivery_timeout),
            "FLOWPAIR_RELAY_LEASE_SECONDS": str(s.relay.lease_seconds),
            "FLOWPAIR_SHUTDOWN_GRACE_SECONDS": "2",
            "FLOWPAIR_PHASE_LEASE_SECONDS": str(s.phase_lease_seconds),
        }

    async def start_orchestrator(self) -> ServiceApp:
        from orchestrator_svc.app import build

        app = build(self.settings())
        await app.start()
        self.apps.append(app)
        return app

    async def start_discovery(
        self, handlers: Mapping[Phase, PhaseHandler] | None = None
    ) -> ServiceApp:
        from discovery_svc.app import build
        from discovery_svc.phases import HANDLERS

        app = build(self.settings(), handlers=HANDLERS if handlers is None else handlers)
        await app.start()
        self.apps.append(app)
        return app

    def channel(self, port: int) -> grpc.aio.Channel:
        ch = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.channels.append(ch)
        return ch

    def orchestrator(self) -> OrchestratorServiceAsyncStub:
        return orchestrator_pb2_grpc.OrchestratorServiceStub(self.channel(self.orchestrator_port))

    def flow_events(self, *, as_peer: str = "discovery") -> FlowEventServiceAsyncStub:
        """The orchestrator's internal API, called with ``as_peer``'s certificate."""
        ch = internal_channel(self.orchestrator_internal_port, "orchestrator", as_peer)
        self.channels.append(ch)
        return flow_event_service_pb2_grpc.FlowEventServiceStub(ch)

    def child_flows(self, *, as_peer: str = "orchestrator") -> ChildFlowServiceAsyncStub:
        """The discovery service's internal API, called with ``as_peer``'s certificate."""
        ch = internal_channel(self.discovery_internal_port, "discovery", as_peer)
        self.channels.append(ch)
        return child_flow_service_pb2_grpc.ChildFlowServiceStub(ch)

    def discovery(self) -> DiscoveryServiceAsyncStub:
        return discovery_pb2_grpc.DiscoveryServiceStub(self.channel(self.discovery_port))

    def runner(self) -> PhaseRunner:
        """The in-process discovery service's phase runner (to hold phases back in tests)."""
        for app in self.apps:
            for work in app.background:
                if isinstance(work, PhaseRunner):
                    return work
        raise LookupError("discovery is not running in this process")

    async def upload(
        self,
        tenant: Tenant,
        data: bytes | Iterable[bytes],
        *,
        import_id: uuid.UUID | None = None,
        chunk_size: int = 256 * 1024,
    ) -> discovery_pb2.Import:
        """Upload CSV bytes (or an iterable of chunks) through UploadImportData."""

        def chunks() -> Iterator[bytes]:
            if isinstance(data, bytes):
                for i in range(0, len(data), chunk_size):
                    yield data[i : i + chunk_size]
            else:
                yield from data

        async def requests() -> AsyncIterator[discovery_pb2.UploadImportDataRequest]:
            yield discovery_pb2.UploadImportDataRequest(
                metadata=discovery_pb2.ImportMetadata(
                    import_id=str(import_id) if import_id else "", file_name="test.csv"
                )
            )
            for chunk in chunks():
                yield discovery_pb2.UploadImportDataRequest(chunk=chunk)

        response = await self.discovery().UploadImportData(requests(), metadata=md(tenant))
        result: discovery_pb2.Import = response.data_import
        return result

    async def start_flow(
        self, tenant: Tenant, data: bytes, **fields: Any
    ) -> tuple[str, discovery_pb2.Import]:
        """Upload ``data`` and create a discovery flow on it (``fields`` set on the Flow):
        the flow's name and the import."""
        uploaded = await self.upload(tenant, data)
        flow = orchestrator_pb2.Flow(type=flow_pb2.FLOW_TYPE_DISCOVERY, **fields)
        flow.data_import = uploaded.name
        created = await self.orchestrator().CreateFlow(
            orchestrator_pb2.CreateFlowRequest(flow=flow), metadata=md(tenant)
        )
        return created.flow.name, uploaded

    async def start_processes(self, log_dir: Path) -> tuple[Process, Process]:
        """Both services in their own OS processes, once they report SERVING."""
        env = self.env()
        orchestrator = Process("orchestrator_svc", env, log_dir / "orchestrator.log")
        discovery = Process("discovery_svc", env, log_dir / "discovery.log")
        await orchestrator.wait_serving(self.orchestrator_port)
        await discovery.wait_serving(self.discovery_port)
        return orchestrator, discovery

    async def close(self) -> None:
        for ch in self.channels:
            await ch.close()
        for app in reversed(self.apps):
            await app.stop(0.5)
        self.apps.clear()


def with_relay(stack: Stack, **changes: Any) -> Stack:
    stack.relay = replace(stack.relay, **changes)
    return stack


class Process:
    """A service in its own OS process, so a test can SIGKILL or SIGTERM it."""

    def __init__(self, module: str, env: dict[str, str], log_path: Path) -> None:
        self.module = module
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module],
            env=env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def wait_serving(self, port: int, timeout: float = 30.0) -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub: Any = health_pb2_grpc.HealthStub(ch)  # the stubs' types are sync-only

            async def serving() -> bool:
                if self.proc.poll() is not None:
                    raise AssertionError(
                        f"{self.module} exited: {self.log_path.read_text()[-2000:]}"
                    )
                try:
                    r = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                except grpc.aio.AioRpcError:
                    return False
                return bool(r.status == health_pb2.HealthCheckResponse.SERVING)

            await eventually(serving, timeout=timeout, interval=0.1)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout: float = 15.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self._log.close()


async def approve_waiving_gaps(
    stack: Stack, tenant: Tenant, name: str, listed: discovery_pb2.ListFieldMappingsResponse
) -> None:
    """Approve a flow's suggested mapping as listed, waiving the required attributes it lacks."""
    await stack.discovery().UpdateFieldMappings(
        discovery_pb2.UpdateFieldMappingsRequest(
            master_flow=name,
            etag=listed.etag,
            approve=True,
            waive_required_attributes=list(listed.missing_required_attributes),
        ),
        metadata=md(tenant),
    )


async def fetch(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def fetchval(database_url: str, query: str, *args: Any) -> Any:
    rows = await fetch(database_url, query, *args)
    return rows[0][0] if rows else None
