"""Wiring of the discovery service: one function builds the whole service from settings."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from discovery_svc.adapters.messages import ORCHESTRATOR
from discovery_svc.entrypoints.grpc_api import DiscoveryServicer
from discovery_svc.service_layer.handlers import SOURCE, Discovery
from flowpair.v1 import discovery_pb2, discovery_pb2_grpc
from flowpair_shared.server import ServiceApp, assemble
from flowpair_shared.settings import Settings

SERVICE_NAMES = (discovery_pb2.DESCRIPTOR.services_by_name["DiscoveryService"].full_name,)


def _servicers(
    engine: AsyncEngine, after_commit: Callable[[], None]
) -> Callable[[grpc.aio.Server], None]:
    discovery = Discovery(engine, after_commit=after_commit)

    def register(server: grpc.aio.Server) -> None:
        discovery_pb2_grpc.add_DiscoveryServiceServicer_to_server(
            DiscoveryServicer(discovery), server
        )

    return register


def build(settings: Settings) -> ServiceApp:
    return assemble(
        name=SOURCE,
        settings=settings,
        listen=settings.discovery_listen,
        peers={ORCHESTRATOR: settings.orchestrator_target},
        service_names=SERVICE_NAMES,
        servicers=_servicers,
    )
