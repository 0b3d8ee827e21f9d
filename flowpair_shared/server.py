"""Serving a flowpair service: gRPC server, health, reflection, relay, ordered shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor
from google.rpc import error_details_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy.ext.asyncio import AsyncEngine

from flowpair_shared import db_scope, keepalive, logs, metrics, tasks, tls, tracing
from flowpair_shared.auth import (
    Access,
    Authenticator,
    PeerAccess,
    PublicAccess,
    TrustedHeadersAccess,
    method_roles,
)
from flowpair_shared.auth.jwt_verifier import JwtVerifier
from flowpair_shared.auth.token_file import TokenFile
from flowpair_shared.db import asyncpg_dsn, create_engine
from flowpair_shared.dbfailures import is_unavailable
from flowpair_shared.errors import Unavailable
from flowpair_shared.interceptor import FlowpairInterceptor
from flowpair_shared.notify import Listener
from flowpair_shared.outbox.relay import Relay
from flowpair_shared.settings import Settings
from flowpair_shared.tenancy import Tenant

log = logging.getLogger("flowpair.server")

# Upload chunks are at most 4 MiB; leave room for the framing around them. A second process
# on the same port must fail to bind rather than silently share it (SO_REUSEPORT).
_SERVER_OPTIONS = (
    ("grpc.max_receive_message_length", 5 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
    *keepalive.SERVER_OPTIONS,
)


class Background(Protocol):
    """Work a service runs beside its gRPC server (relay, listener, phase runner)."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


@runtime_checkable
class Binds(Protocol):
    """Background work with a port of its own, bound with the gRPC ports (before anything
    runs), so that a port in use stops the service before it serves."""

    def bind(self) -> None: ...


@dataclass(frozen=True)
class Wiring:
    """What a service's servicers may use, handed over by ``assemble``."""

    engine: AsyncEngine
    listener: Listener
    kick_relay: Callable[[], None]
    settings: Settings
    channels: Mapping[str, grpc.aio.Channel]
    """The peer's internal port, by peer name (the relay's channels)."""


@dataclass(frozen=True)
class Servicers:
    """A service's gRPC registrations (public and internal) and its background work."""

    register: Callable[[grpc.aio.Server], None]
    register_internal: Callable[[grpc.aio.Server], None]
    background: Sequence[Background] = ()
    metrics: Sequence[metrics.Family] = ()
    """Gauges of the service's own tables, for its metrics endpoint."""


@dataclass(frozen=True)
class Port:
    """One listening port: address, credentials (None: plaintext), admission, services."""

    listen: str
    credentials: grpc.ServerCredentials | None
    access: Access
    register: Callable[[grpc.aio.Server], None]
    service_names: Sequence[str]
    reflection: bool


@dataclass(kw_only=True)
class ServiceApp:
    """One running service: its public and internal gRPC servers, background work and the
    resources they hold."""

    name: str
    public: Port
    internal: Port
    engine: AsyncEngine
    background: Sequence[Background] = ()
    channels: Mapping[str, grpc.aio.Channel] = field(default_factory=dict)
    allow_insecure: bool = False
    max_concurrent_rpcs: int | None = None
    """Calls in flight per port before new ones are refused RESOURCE_EXHAUSTED."""
    port: int = 0
    internal_port: int = 0
    fatal: str | None = None
    """Why the service must stop (found after start), for ``serve_until_signal``."""
    on_fatal: Callable[[], None] = lambda: None
    _role_check: asyncio.Task[None] | None = None
    ready: bool = False
    """Whether the database role passed its check and the service serves."""
    _servers: list[grpc.aio.Server] = field(default_factory=list)
    _health: dict[str, tuple[health.aio.HealthServicer, Sequence[str]]] = field(
        default_factory=dict
    )

    async def _serve(self, spec: Port, role: str) -> int:
        server = grpc.aio.server(
            interceptors=[FlowpairInterceptor(_UntilReady(spec.access, self))],
            options=_SERVER_OPTIONS,
            # Back-pressure: past this many calls in flight on the port, a call is refused
            # RESOURCE_EXHAUSTED at once instead of queueing for a pooled connection until
            # its deadline. Health checks count too, so a saturated port reads as busy.
            maximum_concurrent_rpcs=self.max_concurrent_rpcs,
        )
        spec.register(server)
        # One health service per port, naming only the services that port serves.
        checks = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(checks, server)
        self._health[role] = (checks, spec.service_names)
        if spec.reflection:
            reflection.enable_server_reflection(
                (*spec.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME),
                server,
                pool=_described_only(spec.service_names),
            )
        try:
            if spec.credentials is None:
                port = server.add_insecure_port(spec.listen)
            else:
                port = server.add_secure_port(spec.listen, spec.credentials)
        except RuntimeError:  # grpcio raises instead of returning 0 when the bind fails
            port = 0
        if port == 0:
            raise SystemExit(f"{self.name}: cannot listen on {spec.listen} ({role}): in use?")
        await server.start()
        self._servers.append(server)
        return port

    async def start(self) -> int:
        """Check the database role, bind both ports, start serving and start the relay;
        return the public port.

        With the database unreachable, the ports still open (health NOT_SERVING, every call
        UNAVAILABLE) and the role is checked as soon as the database answers: only then does
        the service serve and its background work start."""
        ready = await self._role_checked()
        if not ready:
            log.warning("database unreachable at start; serving once it answers")
        bound: list[Background] = []
        try:
            for work in self.background:
                if isinstance(work, Binds):
                    work.bind()
                    bound.append(work)
            self.port = await self._serve(self.public, "public")
            self.internal_port = await self._serve(self.internal, "internal")
        except BaseException:
            for server in self._servers:
                await server.stop(None)
            for work in bound:
                await work.stop()
            raise
        log.info(
            "listening",
            extra={
                "listen": self.public.listen,
                "port": self.port,
                "tls": self.public.credentials is not None,
                "internal_listen": self.internal.listen,
                "internal_port": self.internal_port,
                "mtls": self.internal.credentials is not None,
            },
        )
        if ready:
            await self._serving()
        else:
            for checks, names in self._health.values():
                for service in ("", *names):
                    await checks.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
            self._role_check = asyncio.create_task(self._check_role_when_reachable())
        return self.port

    async def _serving(self) -> None:
        self.ready = True
        for checks, names in self._health.values():
            for service in ("", *names):
                await checks.set(service, health_pb2.HealthCheckResponse.SERVING)
        for work in self.background:
            work.start()
        log.info("serving")

    async def _role_checked(self) -> bool:
        """True once the database role passed its check (SystemExit if it bypasses row-level
        security); False while the database is unreachable."""
        try:
            await db_scope.refuse_rls_bypass(
                self.engine, self.name, allow_insecure=self.allow_insecure
            )
        except Exception as error:
            if not is_unavailable(error):
                raise
            return False
        return True

    async def _check_role_when_reachable(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            try:
                if await self._role_checked():
                    break
            except SystemExit as refused:
                self.fatal = str(refused)
                log.critical("stopping: %s", refused)
                self.on_fatal()
                return
            except Exception:
                log.exception("database role check failed; retrying")
        await self._serving()

    async def stop(self, grace: float = 10.0) -> None:
        """Not serving → drain in-flight RPCs → stop background work → close channels and pool."""
        # Awaited, not only cancelled: a check that was starting the background work has
        # unwound before that work is stopped, and no task is left pending at exit.
        await tasks.cancelled(self._role_check)
        self._role_check = None
        for checks, _ in self._health.values():
            await checks.enter_graceful_shutdown()
        await asyncio.gather(*(server.stop(grace) for server in self._servers))
        for work in reversed(self.background):
            await work.stop()
        for channel in self.channels.values():
            await channel.close()
        await self.engine.dispose()
        log.info("stopped")


class _UntilReady:
    """Admits calls only once the service is ready (its database role checked)."""

    def __init__(self, access: Access, app: ServiceApp) -> None:
        self._access, self._app = access, app

    async def admit(
        self, method: str, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Tenant | None:
        if not self._app.ready:
            raise Unavailable(
                "the service cannot reach its database yet; retry with backoff",
                reason="DATABASE_UNAVAILABLE",
            )
        return await self._access.admit(method, context)


def _described_only(service_names: Sequence[str]) -> descriptor_pool.DescriptorPool:
    """A descriptor pool with just these services' files and what they import, so reflection
    cannot describe anything else this process has loaded (the internal services)."""
    default = descriptor_pool.Default()
    names = (*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME)
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file: FileDescriptor) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        pool.Add(proto)
        added.add(file.name)

    for name in names:
        add(default.FindServiceByName(name).file)
    # The rich error details, so grpcurl and other reflection clients can decode them.
    add(error_details_pb2.DESCRIPTOR)
    return pool


def _insecure(settings: Settings, what: str) -> None:
    """Refuse ``what`` unless FLOWPAIR_ALLOW_INSECURE=1, and then say so loudly."""
    if not settings.allow_insecure:
        raise SystemExit(f"refusing to start: {what}. Set FLOWPAIR_ALLOW_INSECURE=1 to allow it.")
    log.warning("INSECURE: %s (allowed by FLOWPAIR_ALLOW_INSECURE=1)", what)


def public_access(settings: Settings, services: Sequence[ServiceDescriptor]) -> Access:
    """Bearer-token admission from the tokens file and/or JWKS in ``settings``."""
    tokens = TokenFile(settings.auth_tokens_file) if settings.auth_tokens_file else None
    jwts = (
        JwtVerifier(
            settings.auth_jwks,
            issuer=settings.auth_jwt_issuer,
            audience=settings.auth_jwt_audience,
            allow_insecure=settings.allow_insecure,
        )
        if settings.auth_jwks
        else None
    )
    if tokens is None and jwts is None:
        _insecure(
            settings,
            "no authentication is configured (FLOWPAIR_AUTH_TOKENS_FILE or FLOWPAIR_AUTH_JWKS);"
            " callers' tenant and user headers would be believed",
        )
        return TrustedHeadersAccess()
    return PublicAccess(Authenticator(tokens, jwts), method_roles(services))


def assemble(
    *,
    name: str,
    settings: Settings,
    public_services: Sequence[ServiceDescriptor],
    internal_services: Sequence[ServiceDescriptor],
    servicers: Callable[[Wiring], Servicers],
) -> ServiceApp:
    """Wire a service: engine, LISTEN connection, the channel to its peer's internal port,
    relay (its outbox ``source`` is ``name``) and the servicers, which get all of it (the
    relay's kick to call after each commit) and may add background work of their own.

    Refuses (SystemExit) to expose a port unsafely unless FLOWPAIR_ALLOW_INSECURE=1: a public
    port off loopback without TLS, no authentication, an internal port without mutual TLS."""
    svc = settings.service(name)
    public_tls = tls.public_credentials(svc)
    if public_tls is None and not tls.is_loopback(svc.listen):
        _insecure(settings, f"public port {svc.listen} is not loopback and has no TLS")
    access = public_access(settings, public_services)
    mtls = tls.has_internal_tls(svc)
    if not mtls:
        _insecure(
            settings,
            f"internal port {svc.internal_listen} has no mutual TLS"
            " (FLOWPAIR_INTERNAL_CA_FILE and this service's internal certificate and key)",
        )
    engine = create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        application_name=f"flowpair-{name}",
        statement_timeout=settings.db_statement_timeout,
        idle_in_transaction_timeout=settings.db_idle_in_transaction_timeout,
        pool_timeout=settings.db_pool_timeout,
    )
    channels = {svc.peer: tls.peer_channel(svc, secure=mtls)}
    listener = Listener(asyncpg_dsn(settings.database_url))
    relay = Relay(
        engine=engine, listener=listener, source=name, channels=channels, settings=settings.relay
    )
    wired = servicers(Wiring(engine, listener, relay.kick, settings, channels))
    observed: tuple[Background, ...] = ()
    if svc.metrics_listen:
        observed = (
            metrics.Metrics(
                source=name,
                engine=engine,
                listen=svc.metrics_listen,
                interval=settings.metrics_interval,
                families=wired.metrics,
            ),
        )
    return ServiceApp(
        name=name,
        public=Port(
            listen=svc.listen,
            credentials=public_tls,
            access=access,
            register=wired.register,
            service_names=[s.full_name for s in public_services],
            reflection=True,
        ),
        internal=Port(
            listen=svc.internal_listen,
            credentials=tls.internal_server_credentials(svc) if mtls else None,
            access=PeerAccess(svc.peer) if mtls else TrustedHeadersAccess(),
            register=wired.register_internal,
            service_names=[s.full_name for s in internal_services],
            reflection=False,
        ),
        engine=engine,
        allow_insecure=settings.allow_insecure,
        max_concurrent_rpcs=settings.max_concurrent_rpcs,
        # Started in this order, stopped in reverse: the listener outlives its subscribers.
        background=(listener, relay, *wired.background, *observed),
        channels=channels,
    )


async def serve_until_signal(build: Callable[[Settings], ServiceApp], settings: Settings) -> None:
    """Build the service (inside the loop: gRPC channels bind to it), run it until SIGTERM or
    SIGINT, then shut it down in order."""
    app = build(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app.on_fatal = stop.set
    await app.start()
    await stop.wait()
    log.info("shutdown requested")
    await app.stop(settings.shutdown_grace)
    if app.fatal is not None:
        raise SystemExit(app.fatal)


def main(service: str, build: Callable[[Settings], ServiceApp]) -> None:
    """Entry point of ``python -m <service>_svc``."""
    logs.configure(service)
    tracing.setup(service)  # off unless the OTEL_* variables name an exporter
    try:
        asyncio.run(serve_until_signal(build, Settings.from_env()))
    finally:
        tracing.shutdown()  # export the spans still buffered
