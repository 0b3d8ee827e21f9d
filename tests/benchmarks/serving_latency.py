"""GetChildFlow latency on the discovery service while a large flow's phases run, with the
phases on the serving event loop (``FLOWPAIR_PHASE_WORKERS=0``) and in worker processes (2).

    PYTHONPATH=. .venv/bin/python -m tests.benchmarks.serving_latency [--rows 40000] [--runs 2]

Both services run in their own processes. Per run: upload an export, create an auto-approved
flow on it, and from the moment its child exists until the flow completes, ``--clients``
clients call GetChildFlow back to back. The modes alternate run by run (0, 2, 0, 2, ...) on
one database, so both see the same machine; the table gives each mode's calls, p50 and p99
over all its runs, and the median journey time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from flowpair.v1 import discovery_pb2, flow_pb2, orchestrator_pb2
from tests.benchmarks.__main__ import cmdb_rows, percentile, scratch_database
from tests.support import Process, Stack, md, new_tenant


@dataclass(frozen=True)
class Run:
    journey: float
    """Seconds from CreateFlow to COMPLETED."""
    latencies: list[float]
    """GetChildFlow latencies (seconds) while the phases ran."""


async def one_run(url: str, workers: int, rows: int, clients: int, logs: Path) -> Run:
    stack = Stack(url)
    # The default lease: the test stack's 3 s lapse while a loaded machine cleanses a page.
    env = {
        **stack.env(),
        "FLOWPAIR_PHASE_WORKERS": str(workers),
        "FLOWPAIR_PHASE_LEASE_SECONDS": "30",
    }
    orchestrator = Process("orchestrator_svc", env, logs / f"orchestrator-{workers}.log")
    discovery = Process("discovery_svc", env, logs / f"discovery-{workers}.log")
    try:
        await orchestrator.wait_serving(stack.orchestrator_port)
        await discovery.wait_serving(stack.discovery_port)
        tenant = new_tenant()
        uploaded = await stack.upload(tenant, cmdb_rows(rows))
        flow = orchestrator_pb2.Flow(
            type=flow_pb2.FLOW_TYPE_DISCOVERY, auto_approve=True, allow_concurrent=True
        )
        flow.data_import = uploaded.name
        orch = stack.orchestrator()
        began = time.perf_counter()
        name = (
            await orch.CreateFlow(
                orchestrator_pb2.CreateFlowRequest(flow=flow), metadata=md(tenant)
            )
        ).flow.name
        disc = stack.discovery()
        request = discovery_pb2.GetChildFlowRequest(master_flow=name)
        while True:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await disc.GetChildFlow(request, metadata=md(tenant))
                break
            await asyncio.sleep(0.01)
        latencies: list[float] = []
        done = asyncio.Event()

        async def client() -> None:
            while not done.is_set():
                start = time.perf_counter()
                await disc.GetChildFlow(request, metadata=md(tenant), timeout=30)
                latencies.append(time.perf_counter() - start)

        async def watch() -> None:
            stream = orch.WatchFlow(
                orchestrator_pb2.WatchFlowRequest(name=name), metadata=md(tenant)
            )
            async for update in stream:
                status = update.event.flow_status
                if status in (flow_pb2.FLOW_STATUS_COMPLETED, flow_pb2.FLOW_STATUS_FAILED):
                    assert status == flow_pb2.FLOW_STATUS_COMPLETED, update
                    break
            done.set()

        await asyncio.gather(watch(), *(client() for _ in range(clients)))
        return Run(time.perf_counter() - began, latencies)
    finally:
        await stack.close()
        for p in (orchestrator, discovery):
            with contextlib.suppress(Exception):
                await asyncio.to_thread(p.terminate)
            p.close()


async def main(args: argparse.Namespace) -> None:
    logs = Path(tempfile.mkdtemp(prefix="flowpair-latency-"))
    results: dict[int, list[Run]] = {0: [], 2: []}
    async with scratch_database("flowpair_latency") as url:
        for run in range(args.runs):
            for workers in (0, 2):
                r = await one_run(url, workers, args.rows, args.clients, logs)
                results[workers].append(r)
                lat = r.latencies
                print(
                    f"run {run + 1} workers={workers}: {len(lat)} calls,"
                    f" p50 {percentile(lat, 0.5) * 1e3:.1f} ms,"
                    f" p99 {percentile(lat, 0.99) * 1e3:.1f} ms, journey {r.journey:.1f} s",
                    flush=True,
                )
    print(f"\n{args.rows:,}-row flow, {args.clients} clients calling GetChildFlow; logs in {logs}")
    print("| FLOWPAIR_PHASE_WORKERS | calls | p50 | p99 | journey (median) |")
    print("|---|---|---|---|---|")
    for workers, runs in results.items():
        lat = [x for r in runs for x in r.latencies]
        journey = statistics.median(r.journey for r in runs)
        print(
            f"| {workers} | {len(lat):,} | {percentile(lat, 0.5) * 1e3:.1f} ms"
            f" | {percentile(lat, 0.99) * 1e3:.1f} ms | {journey:.1f} s |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    asyncio.run(main(parser.parse_args()))
