"""Wiring of the discovery service: one function builds the whole service from settings."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import grpc

from discovery_svc.adapters import jobs
from discovery_svc.adapters.job_retention import FINISHED_PHASE_JOBS
from discovery_svc.entrypoints.grpc_api import DiscoveryServicer
from discovery_svc.entrypoints.internal_api import ChildFlowServicer
from discovery_svc.phases import HANDLERS
from discovery_svc.phases.base import PhaseHandler
from discovery_svc.service_layer.handlers import SOURCE, Discovery
from discovery_svc.service_layer.runner import PhaseRunner
from discovery_svc.service_layer.uploads import UploadSlots
from discovery_svc.service_layer.workers import PhaseWorkers, runner_settings
from flowpair.internal.v1 import child_flow_service_pb2, child_flow_service_pb2_grpc
from flowpair.v1 import discovery_pb2, discovery_pb2_grpc
from flowpair_shared.domain import Phase
from flowpair_shared.outbox import batch
from flowpair_shared.outbox.retention import Retention
from flowpair_shared.server import Background, ServiceApp, Servicers, Wiring, assemble
from flowpair_shared.settings import Settings

PUBLIC_SERVICES = (discovery_pb2.DESCRIPTOR.services_by_name["DiscoveryService"],)
INTERNAL_SERVICES = (
    child_flow_service_pb2.DESCRIPTOR.services_by_name["ChildFlowService"],
    batch.DESCRIPTOR,
)


def _phases(
    wiring: Wiring, handlers: Mapping[Phase, PhaseHandler]
) -> tuple[Background, Callable[[], None]]:
    """Who runs the phases, and how to wake it when a job is queued: worker processes (they
    wake on the queue's notification), or with ``phase_workers`` 0 a runner on this loop."""
    workers = wiring.settings.phase_workers
    if workers > 0:
        if handlers is not HANDLERS:
            raise ValueError("custom phase handlers run in-process only (phase_workers=0)")
        return PhaseWorkers(wiring.settings, count=workers), lambda: None
    runner = PhaseRunner(
        wiring.engine,
        handlers=handlers,
        after_commit=wiring.kick_relay,
        listener=wiring.listener,
        settings=runner_settings(wiring.settings, progressive=False),
    )
    return runner, runner.kick


def _servicers(wiring: Wiring, handlers: Mapping[Phase, PhaseHandler]) -> Servicers:
    phases, wake_runner = _phases(wiring, handlers)
    discovery = Discovery(wiring.engine, after_commit=wiring.kick_relay, wake_runner=wake_runner)
    uploads = UploadSlots(wiring.settings.max_concurrent_uploads)

    def register(server: grpc.aio.Server) -> None:
        servicer = DiscoveryServicer(discovery, uploads=uploads)
        discovery_pb2_grpc.add_DiscoveryServiceServicer_to_server(servicer, server)

    def register_internal(server: grpc.aio.Server) -> None:
        servicer = ChildFlowServicer(discovery)
        child_flow_service_pb2_grpc.add_ChildFlowServiceServicer_to_server(servicer, server)
        batch.add_to_server(server, wiring.engine, [(servicer, child_flow_service_pb2)])

    retention = Retention(
        engine=wiring.engine,
        name=SOURCE,
        settings=wiring.settings.retention,
        extra=(FINISHED_PHASE_JOBS,),
    )
    return Servicers(
        register, register_internal, background=(phases, retention), metrics=(jobs.QUEUE_DEPTH,)
    )


def build(settings: Settings, *, handlers: Mapping[Phase, PhaseHandler] = HANDLERS) -> ServiceApp:
    return assemble(
        name=SOURCE,
        settings=settings,
        public_services=PUBLIC_SERVICES,
        internal_services=INTERNAL_SERVICES,
        servicers=functools.partial(_servicers, handlers=handlers),
    )
