"""Serving a flowpair service: gRPC server, health, reflection, relay, ordered shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy.ext.asyncio import AsyncEngine

from flowpair_shared import db_scope, logs
from flowpair_shared.db import asyncpg_dsn, create_engine
from flowpair_shared.interceptor import FlowpairInterceptor
from flowpair_shared.notify import Listener
from flowpair_shared.outbox.relay import Relay
from flowpair_shared.settings import Settings

log = logging.getLogger("flowpair.server")

# Reconnect quickly after a peer restarts: gRPC's default backoff grows to two minutes.
PEER_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    # Spread deliveries over every replica a DNS name resolves to.
    ("grpc.lb_policy_name", "round_robin"),
)


def peer_channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target, options=PEER_CHANNEL_OPTIONS)


class Background(Protocol):
    """Work a service runs beside its gRPC server (relay, listener, phase runner)."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class Wiring:
    """What a service's servicers may use, handed over by ``assemble``."""

    engine: AsyncEngine
    listener: Listener
    kick_relay: Callable[[], None]
    settings: Settings


@dataclass(frozen=True)
class Servicers:
    """A service's gRPC registrations and the background work it needs."""

    register: Callable[[grpc.aio.Server], None]
    background: Sequence[Background] = ()


@dataclass(kw_only=True)
class ServiceApp:
    """One running service: its gRPC server, background work and the resources they hold."""

    name: str
    listen: str
    engine: AsyncEngine
    register: Callable[[grpc.aio.Server], None]
    service_names: Sequence[str]
    background: Sequence[Background] = ()
    channels: Mapping[str, grpc.aio.Channel] = field(default_factory=dict)
    port: int = 0
    _server: grpc.aio.Server | None = None
    _health: health.aio.HealthServicer | None = None

    async def start(self) -> int:
        """Bind, start serving and start the relay; return the bound port."""
        await db_scope.refuse_rls_bypass(self.engine, self.name)
        server = grpc.aio.server(
            interceptors=[FlowpairInterceptor()],
            # Upload chunks are at most 4 MiB; leave room for the framing around them.
            options=[("grpc.max_receive_message_length", 5 * 1024 * 1024)],
        )
        self.register(server)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        self.port = server.add_insecure_port(self.listen)
        if self.port == 0:
            raise SystemExit(f"{self.name}: cannot listen on {self.listen}")
        await server.start()
        self._server = server
        for service in ("", *self.service_names):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        for work in self.background:
            work.start()
        log.info("serving", extra={"listen": self.listen, "port": self.port})
        return self.port

    async def stop(self, grace: float = 10.0) -> None:
        """Not serving → drain in-flight RPCs → stop background work → close channels and pool."""
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace)
        for work in reversed(self.background):
            await work.stop()
        for channel in self.channels.values():
            await channel.close()
        await self.engine.dispose()
        log.info("stopped")


def assemble(
    *,
    name: str,
    settings: Settings,
    listen: str,
    peers: Mapping[str, str],
    service_names: Sequence[str],
    servicers: Callable[[Wiring], Servicers],
) -> ServiceApp:
    """Wire a service: engine, LISTEN connection, peer channels, relay (its outbox ``source``
    is ``name``) and the servicers, which get all of it (the relay's kick to call after each
    commit) and may add background work of their own."""
    engine = create_engine(
        settings.database_url, pool_size=settings.db_pool_size, application_name=f"flowpair-{name}"
    )
    channels = {peer: peer_channel(target) for peer, target in peers.items()}
    listener = Listener(asyncpg_dsn(settings.database_url))
    relay = Relay(
        engine=engine, listener=listener, source=name, channels=channels, settings=settings.relay
    )
    wired = servicers(Wiring(engine, listener, relay.kick, settings))
    return ServiceApp(
        name=name,
        listen=listen,
        engine=engine,
        register=wired.register,
        service_names=service_names,
        # Started in this order, stopped in reverse: the listener outlives its subscribers.
        background=(listener, relay, *wired.background),
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
    await app.start()
    await stop.wait()
    log.info("shutdown requested")
    await app.stop(settings.shutdown_grace)


def main(service: str, build: Callable[[Settings], ServiceApp]) -> None:
    """Entry point of ``python -m <service>_svc``."""
    logs.configure(service)
    asyncio.run(serve_until_signal(build, Settings.from_env()))
