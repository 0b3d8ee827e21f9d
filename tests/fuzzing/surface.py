"""The public RPCs, computed from the generated descriptors so that a new RPC is fuzzed too."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from google.protobuf import descriptor, message, message_factory

from flowpair.v1 import discovery_pb2, orchestrator_pb2

# The public services. Their internal methods (called only by the other service's outbox
# relay) are moving to internal services on their own port, so they are not fuzzed here.
PUBLIC_SERVICES: tuple[descriptor.ServiceDescriptor, ...] = (
    orchestrator_pb2.DESCRIPTOR.services_by_name["OrchestratorService"],
    discovery_pb2.DESCRIPTOR.services_by_name["DiscoveryService"],
)
INTERNAL_METHODS = frozenset(
    {
        "flowpair.v1.DiscoveryService.CreateChildFlow",
        "flowpair.v1.DiscoveryService.RunPhase",
        "flowpair.v1.DiscoveryService.CancelChildFlow",
        "flowpair.v1.FlowEventService.RecordPhaseStatus",
    }
)
# Methods whose name starts with one of these only read; every other method may write.
READ_VERBS = ("Get", "List", "Watch")


@dataclass(frozen=True)
class Method:
    """One public RPC."""

    desc: descriptor.MethodDescriptor

    @property
    def name(self) -> str:
        return self.desc.name

    @property
    def service(self) -> str:
        return self.desc.containing_service.full_name

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.desc.name}"

    @property
    def short(self) -> str:
        return f"{self.desc.containing_service.name}.{self.desc.name}"

    @cached_property
    def input(self) -> type[message.Message]:
        return message_factory.GetMessageClass(self.desc.input_type)

    @cached_property
    def output(self) -> type[message.Message]:
        return message_factory.GetMessageClass(self.desc.output_type)

    @property
    def client_streaming(self) -> bool:
        return bool(self.desc.client_streaming)

    @property
    def server_streaming(self) -> bool:
        return bool(self.desc.server_streaming)

    @property
    def writes(self) -> bool:
        return not self.desc.name.startswith(READ_VERBS)


def public_methods() -> list[Method]:
    return [
        Method(m)
        for service in PUBLIC_SERVICES
        for m in service.methods
        if m.full_name not in INTERNAL_METHODS
    ]
