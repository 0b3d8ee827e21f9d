"""Wiring of the discovery service: one function builds the whole service from settings."""

from __future__ import annotations

import grpc

from discovery_svc.adapters.messages import ORCHESTRATOR
from discovery_svc.entrypoints.grpc_api import DiscoveryServicer
from discovery_svc.service_layer.handlers import SOURCE, Discovery
from flowpair.v1 import discovery_pb2, discovery_pb2_grpc
from flowpair_shared.db import asyncpg_dsn, create_engine
from flowpair_shared.outbox import Relay
from flowpair_shared.server import ServiceApp, peer_channel
from flowpair_shared.settings import Settings

SERVICE_NAMES = (discovery_pb2.DESCRIPTOR.services_by_name["DiscoveryService"].full_name,)


def build(settings: Settings, *, listen: str | None = None) -> ServiceApp:
    engine = create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        application_name="flowpair-discovery",
    )
    channels = {ORCHESTRATOR: peer_channel(settings.orchestrator_target)}
    relay = Relay(
        engine=engine,
        listen_dsn=asyncpg_dsn(settings.database_url),
        source=SOURCE,
        channels=channels,
        settings=settings.relay,
    )
    discovery = Discovery(engine, after_commit=relay.kick)

    def register(server: grpc.aio.Server) -> None:
        discovery_pb2_grpc.add_DiscoveryServiceServicer_to_server(
            DiscoveryServicer(discovery), server
        )

    return ServiceApp(
        name="discovery",
        listen=listen or settings.discovery_listen,
        engine=engine,
        register=register,
        service_names=SERVICE_NAMES,
        relay=relay,
        channels=channels,
    )
