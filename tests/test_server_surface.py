"""What operators and other-language clients rely on: health, reflection, deadlines."""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.support import Stack


async def _reflected_services(channel: grpc.aio.Channel) -> set[str]:
    # The reflection stubs are typed for sync channels only.
    stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[arg-type]
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    names: set[str] = set()
    async for response in stub.ServerReflectionInfo(iter([request])):
        names |= {s.name for s in response.list_services_response.service}
    return names


async def test_health_and_reflection_on_both_services(stack: Stack) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery()
    for port, expected in (
        (
            stack.orchestrator_port,
            {"flowpair.v1.OrchestratorService"},
        ),
        (stack.discovery_port, {"flowpair.v1.DiscoveryService"}),
    ):
        channel = stack.channel(port)
        services = await _reflected_services(channel)
        assert expected | {"grpc.health.v1.Health"} <= services
        health: Any = health_pb2_grpc.HealthStub(channel)
        for service in ("", *expected):
            r = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert r.status == health_pb2.HealthCheckResponse.SERVING
