"""Wiring of the orchestrator: one function builds the whole service from settings."""

from __future__ import annotations

import grpc

from flowpair.internal.v1 import flow_event_service_pb2, flow_event_service_pb2_grpc
from flowpair.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from flowpair_shared.outbox import batch
from flowpair_shared.outbox.retention import Retention
from flowpair_shared.server import ServiceApp, Servicers, Wiring, assemble
from flowpair_shared.settings import Settings
from orchestrator_svc.adapters import flow_metrics
from orchestrator_svc.adapters.messages import DISCOVERY
from orchestrator_svc.adapters.repository import FLOW_EVENTS_CHANNEL
from orchestrator_svc.adapters.watchers import FlowWatchers
from orchestrator_svc.entrypoints.grpc_api import OrchestratorServicer
from orchestrator_svc.entrypoints.internal_api import FlowEventServicer
from orchestrator_svc.service_layer.handlers import SOURCE, Orchestrator
from orchestrator_svc.service_layer.operations import Operations
from orchestrator_svc.service_layer.reconciler import Reconciler

PUBLIC_SERVICES = (orchestrator_pb2.DESCRIPTOR.services_by_name["OrchestratorService"],)
INTERNAL_SERVICES = (
    flow_event_service_pb2.DESCRIPTOR.services_by_name["FlowEventService"],
    batch.DESCRIPTOR,
)


def _servicers(wiring: Wiring) -> Servicers:
    watchers = FlowWatchers()
    wiring.listener.subscribe(FLOW_EVENTS_CHANNEL, watchers.on_notify)
    orchestrator = Orchestrator(wiring.engine, after_commit=wiring.kick_relay, watchers=watchers)
    reconcile = wiring.settings.reconcile
    operations = Operations(wiring.engine, orchestrator, wiring.channels[DISCOVERY], reconcile)

    def register(server: grpc.aio.Server) -> None:
        orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(
            OrchestratorServicer(orchestrator, operations), server
        )

    def register_internal(server: grpc.aio.Server) -> None:
        servicer = FlowEventServicer(orchestrator)
        flow_event_service_pb2_grpc.add_FlowEventServiceServicer_to_server(servicer, server)
        batch.add_to_server(server, wiring.engine, [(servicer, flow_event_service_pb2)])

    retention = Retention(engine=wiring.engine, name=SOURCE, settings=wiring.settings.retention)
    reconciler = Reconciler(engine=wiring.engine, operations=operations, settings=reconcile)
    return Servicers(
        register,
        register_internal,
        background=(retention, reconciler),
        metrics=(flow_metrics.FLOWS,),
    )


def build(settings: Settings) -> ServiceApp:
    return assemble(
        name=SOURCE,
        settings=settings,
        public_services=PUBLIC_SERVICES,
        internal_services=INTERNAL_SERVICES,
        servicers=_servicers,
    )
