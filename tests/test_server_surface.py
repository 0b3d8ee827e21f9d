"""What operators and other-language clients rely on: health, reflection, deadlines."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
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


async def test_a_second_instance_on_the_same_ports_refuses_to_start(stack: Stack) -> None:
    # With SO_REUSEPORT (gRPC's default) a second `make run` bound the same ports and the
    # kernel split the calls between the two; it must stop with a clear message instead.
    from orchestrator_svc.app import build

    await stack.start_orchestrator()
    second = build(stack.settings())
    try:
        with pytest.raises(SystemExit, match=r"cannot listen on .* in use"):
            await second.start()
    finally:
        await second.stop(0)
    health: Any = health_pb2_grpc.HealthStub(stack.channel(stack.orchestrator_port))
    answer = await health.Check(health_pb2.HealthCheckRequest())
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
