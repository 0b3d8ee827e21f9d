"""Wiring of the orchestrator: one function builds the whole service from settings."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from flowpair.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from flowpair_shared.server import ServiceApp, assemble
from flowpair_shared.settings import Settings
from orchestrator_svc.adapters.messages import DISCOVERY
from orchestrator_svc.entrypoints.grpc_api import FlowEventServicer, OrchestratorServicer
from orchestrator_svc.service_layer.handlers import SOURCE, Orchestrator

SERVICE_NAMES = (
    orchestrator_pb2.DESCRIPTOR.services_by_name["OrchestratorService"].full_name,
    orchestrator_pb2.DESCRIPTOR.services_by_name["FlowEventService"].full_name,
)


def _servicers(
    engine: AsyncEngine, after_commit: Callable[[], None]
) -> Callable[[grpc.aio.Server], None]:
    orchestrator = Orchestrator(engine, after_commit=after_commit)

    def register(server: grpc.aio.Server) -> None:
        orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(
            OrchestratorServicer(orchestrator), server
        )
        orchestrator_pb2_grpc.add_FlowEventServiceServicer_to_server(
            FlowEventServicer(orchestrator), server
        )

    return register


def build(settings: Settings) -> ServiceApp:
    return assemble(
        name=SOURCE,
        settings=settings,
        listen=settings.orchestrator_listen,
        peers={DISCOVERY: settings.discovery_target},
        service_names=SERVICE_NAMES,
        servicers=_servicers,
    )
