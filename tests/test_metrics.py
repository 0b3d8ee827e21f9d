"""Each service's /metrics after a flow: RPCs by method and code with their latency, the
outbox's backlog, oldest undelivered age and parked messages per peer, the phase job queue
and the database pool, read through HTTP as Prometheus reads them."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
import uuid
from collections.abc import Mapping

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flowpair.v1 import flow_pb2, orchestrator_pb2
from flowpair_shared.metrics import Metrics
from flowpair_shared.server import ServiceApp
from tests.support import Stack, discovery_flow, eventually, fetch, md, new_tenant

Samples = Mapping[tuple[str, frozenset[tuple[str, str]]], float]

EXPORT = b"Server Name,IP Address,OS\nweb01,10.0.0.1,RHEL 8\ndb01,10.0.0.2,Windows 2019\n"


def metrics_port(app: ServiceApp) -> int:
    found = [work for work in app.background if isinstance(work, Metrics)]
    assert len(found) == 1, app.background
    return found[0].port


async def scrape(port: int) -> Samples:
    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            body: bytes = answer.read()
            return body.decode()

    text = await asyncio.to_thread(get)
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def added(now: Samples, before: Samples, name: str, **labels: str) -> float:
    """How much a series grew between two scrapes (the registry is the process's, so counters
    include every earlier test's calls)."""
    return (value(now, name, **labels) or 0) - (value(before, name, **labels) or 0)


async def test_both_services_serve_their_metrics_after_a_flow(stack: Stack) -> None:
    stack.overrides.update(
        orchestrator_metrics_listen="127.0.0.1:0",
        discovery_metrics_listen="127.0.0.1:0",
        metrics_interval=0.2,
    )
    orchestrator = metrics_port(await stack.start_orchestrator())
    discovery = metrics_port(await stack.start_discovery())
    # The registry is the process's: counters include every earlier test's calls, so what
    # this flow added is the difference.
    before = await scrape(orchestrator)
    tenant = new_tenant()
    name, _ = await stack.start_flow(tenant, EXPORT)
    orch = stack.orchestrator()

    async def linked() -> bool:
        got = await orch.GetFlow(orchestrator_pb2.GetFlowRequest(name=name), metadata=md(tenant))
        return got.flow.child_flow != "" and got.flow.status != flow_pb2.FLOW_STATUS_INITIALIZING

    assert await eventually(linked)
    missing = orchestrator_pb2.GetFlowRequest(name=f"flows/{uuid.uuid4()}")
    with pytest.raises(grpc.aio.AioRpcError):
        await orch.GetFlow(missing, metadata=md(tenant))
    # A message the relay gave up on, as after a peer's long outage, and one written an hour
    # ago that waits for a retry due tomorrow.
    await fetch(
        stack.database_url,
        """
        INSERT INTO messaging.outbox (message_id, source, destination, method, message_type,
          ordering_key, seq, payload, client_account_id, engagement_id, parked_at, created_at,
          available_at)
        VALUES (gen_random_uuid(), 'orchestrator', 'discovery', '/m', 't', gen_random_uuid(), 1,
                '\\x00', $1, $2, now(), now() - interval '1 hour', now()),
               (gen_random_uuid(), 'orchestrator', 'discovery', '/m', 't', gen_random_uuid(), 1,
                '\\x00', $1, $2, NULL, now() - interval '1 hour', now() + interval '1 day')
        """,
        tenant.client_account_id,
        tenant.engagement_id,
    )

    async def parked() -> Samples | None:
        samples = await scrape(orchestrator)
        seen = value(
            samples, "flowpair_outbox_parked", service="orchestrator", destination="discovery"
        )
        return samples if seen == 1 else None

    samples = await eventually(parked)
    assert samples is not None
    create = "/flowpair.v1.OrchestratorService/CreateFlow"
    get = "/flowpair.v1.OrchestratorService/GetFlow"
    assert added(samples, before, "flowpair_rpcs_total", method=create, code="OK") == 1
    assert added(samples, before, "flowpair_rpcs_total", method=get, code="NOT_FOUND") == 1
    assert added(samples, before, "flowpair_rpcs_total", method=get, code="OK") >= 1
    timed = "flowpair_rpc_duration_seconds_count"
    assert added(samples, before, timed, method=create, code="OK") == 1
    assert added(samples, before, timed, method=get, code="NOT_FOUND") == 1
    # Undelivered, unparked messages are backlog (the parked one is not), the oldest an hour.
    backlog = value(
        samples, "flowpair_outbox_backlog", service="orchestrator", destination="discovery"
    )
    assert backlog is not None and backlog >= 1
    oldest = value(
        samples,
        "flowpair_outbox_oldest_undelivered_seconds",
        service="orchestrator",
        destination="discovery",
    )
    assert oldest is not None and oldest >= 3600
    assert (
        value(samples, "flowpair_db_pool_connections", service="orchestrator", state="size") == 20
    )

    # A watch the client cancels (how most end) is counted too.
    watch = orch.WatchFlow(orchestrator_pb2.WatchFlowRequest(name=name), metadata=md(tenant))
    await watch.read()
    watch.cancel()
    method = "/flowpair.v1.OrchestratorService/WatchFlow"

    async def cancelled() -> bool:
        now = await scrape(orchestrator)
        return added(now, before, "flowpair_rpcs_total", method=method, code="CANCELLED") == 1

    assert await eventually(cancelled)

    # Flows by status (every tenant's, through the counting function) and the phases' times
    # and failures, as the child reported them: one flow at the gate, one failed.
    failing = await orch.CreateFlow(
        orchestrator_pb2.CreateFlowRequest(flow=discovery_flow()), metadata=md(tenant)
    )

    async def settled() -> Samples | None:
        now = await scrape(orchestrator)
        gate = value(now, "flowpair_flows", status="WAITING_FOR_APPROVAL")
        failed = value(now, "flowpair_flows", status="FAILED")
        return now if (gate, failed) == (1, 1) else None

    now = await eventually(settled)
    assert now is not None
    assert value(now, "flowpair_flows", status="COMPLETED") == 0
    phased = "flowpair_phase_duration_seconds_count"
    assert added(now, before, phased, phase="DATA_IMPORT", outcome="COMPLETED") == 1
    assert added(now, before, phased, phase="DATA_IMPORT", outcome="FAILED") == 1
    assert (
        added(now, before, phased, phase="ATTRIBUTE_MAPPING", outcome="WAITING_FOR_APPROVAL") == 1
    )
    failures = "flowpair_phase_failures_total"
    assert added(now, before, failures, phase="DATA_IMPORT", reason="IMPORT_NOT_FOUND") == 1
    assert failing.flow.name

    on_discovery = await scrape(discovery)
    upload = "/flowpair.v1.DiscoveryService/UploadImportData"
    assert added(on_discovery, before, "flowpair_rpcs_total", method=upload, code="OK") == 1
    assert value(on_discovery, "flowpair_phase_jobs", state="queued") is not None
    assert value(on_discovery, "flowpair_phase_jobs", state="running") is not None
    assert (
        value(on_discovery, "flowpair_db_pool_connections", service="discovery", state="size") == 20
    )


async def test_a_metrics_port_in_use_stops_the_service_before_it_serves(stack: Stack) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        stack.overrides["orchestrator_metrics_listen"] = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(SystemExit, match="cannot serve metrics"):
            await stack.start_orchestrator()
    # Nothing was left serving: the gRPC port was never bound.
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", stack.orchestrator_port)) != 0
