"""Wiring of the orchestrator: one function builds the whole service from settings."""

from __future__ import annotations

import grpc

from flowpair.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from flowpair_shared.db import asyncpg_dsn, create_engine
from flowpair_shared.outbox import Relay
from flowpair_shared.server import ServiceApp, peer_channel
from flowpair_shared.settings import Settings
from orchestrator_svc.adapters.messages import DISCOVERY
from orchestrator_svc.entrypoints.grpc_api import FlowEventServicer, OrchestratorServicer
from orchestrator_svc.service_layer.handlers import SOURCE, Orchestrator

SERVICE_NAMES = (
    orchestrator_pb2.DESCRIPTOR.services_by_name["OrchestratorService"].full_name,
    orchestrator_pb2.DESCRIPTOR.services_by_name["FlowEventService"].full_name,
)


def build(settings: Settings, *, listen: str | None = None) -> ServiceApp:
    engine = create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        application_name="flowpair-orchestrator",
    )
    channels = {DISCOVERY: peer_channel(settings.discovery_target)}
    relay = Relay(
        engine=engine,
        listen_dsn=asyncpg_dsn(settings.database_url),
        source=SOURCE,
        channels=channels,
        settings=settings.relay,
    )
    orchestrator = Orchestrator(engine, after_commit=relay.kick)

    def register(server: grpc.aio.Server) -> None:
        orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(
            OrchestratorServicer(orchestrator), server
        )
        orchestrator_pb2_grpc.add_FlowEventServiceServicer_to_server(
            FlowEventServicer(orchestrator), server
        )

    return ServiceApp(
        name="orchestrator",
        listen=listen or settings.orchestrator_listen,
        engine=engine,
        register=register,
        service_names=SERVICE_NAMES,
        relay=relay,
        channels=channels,
    )
