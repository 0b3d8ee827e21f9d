"""A/B driver for the flow-creation hot path: two source trees, measured interleaved.

    PYTHONPATH=. .venv/bin/python -m tests.benchmarks.hotpath --flows 200 --runs 3 \\
        [--tree /tmp/ab-main] [--concurrency 32]

Per run and per tree (alternating, so both see the same machine): both services of that tree
in their own processes on one fresh database, a burst of ``--flows`` CreateFlow calls from
``--concurrency`` clients on a 5-row import (as ``make bench`` does): CreateFlow's rate, p50
and p99, flows linked per second and flows at the approval gate per second. Then, in a
process of that tree with both services in it and the phase runner held, database round trips
per flow from CreateFlow until the flow is linked and DATA_IMPORT is RUNNING, for one flow
at a time (``single``: every message delivered alone) and for a burst (``batched``). Prints
the medians per tree and the ratios of this tree to the other.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]
INITIALIZATION, DATA_IMPORT = 1, 2
COMPLETED, RUNNING = 3, 2

Json = dict[str, Any]


# -- throughput: services as processes of one tree -----------------------------------------


def _spawn(tree: Path, env: dict[str, str], logs: Path) -> list[tuple[Any, Any]]:
    """Both services of ``tree`` as processes (cwd ``tree``: ``-m`` imports from there)."""
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for module in ("orchestrator_svc", "discovery_svc"):
        log = (logs / f"{module}.log").open("ab")
        command = [sys.executable, "-m", module]
        p = subprocess.Popen(command, env=env, cwd=tree, stdout=log, stderr=subprocess.STDOUT)
        procs.append((p, log))
    return procs


@contextlib.asynccontextmanager
async def processes(tree: Path, url: str, logs: Path) -> AsyncIterator[Any]:
    from tests.support import Stack, eventually

    stack = Stack(url)
    procs = _spawn(tree, {**stack.env(), "PYTHONPATH": str(tree)}, logs)
    try:
        from grpc_health.v1 import health_pb2

        for port in (stack.orchestrator_port, stack.discovery_port):
            import grpc
            from grpc_health.v1 import health_pb2_grpc

            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                stub: Any = health_pb2_grpc.HealthStub(ch)

                async def serving(stub: Any = stub) -> bool:
                    try:
                        r = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    except grpc.aio.AioRpcError:
                        return False
                    return bool(r.status == health_pb2.HealthCheckResponse.SERVING)

                await eventually(serving, timeout=60, interval=0.2)
        yield stack
    finally:
        await stack.close()
        for p, log in procs:
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
            log.close()


async def burst(tree: Path, url: str, flows: int, concurrency: int, logs: Path) -> Json:
    from tests.benchmarks.__main__ import closed_loop as loop
    from tests.benchmarks.__main__ import (
        create_flows,
        latency_summary,
        small_import,
        until_gated,
    )
    from tests.support import new_tenant

    conn = await asyncpg.connect(_dsn(url))
    try:
        async with processes(tree, url, logs) as stack:

            async def one(count: int) -> Json:
                tenant = new_tenant()
                imp = await stack.upload(tenant, small_import())
                create = await create_flows(stack, tenant, imp.name)
                began = time.time()
                rate, latencies = await loop(count, concurrency, create)
                t = await until_gated(conn, tenant.engagement_id, count)
                return {
                    **latency_summary(rate, latencies),
                    "linked_per_s": count / (t["last_linked"].timestamp() - began),
                    "gated_per_s": count / (t["last_gated"].timestamp() - began),
                }

            await one(max(50, flows // 5))  # warm-up
            return await one(flows)
    finally:
        await conn.close()


def _dsn(url: str) -> str:
    from flowpair_shared.db import asyncpg_dsn

    return asyncpg_dsn(url)


# -- round trips: both services in one process of one tree ---------------------------------


def _load_counter() -> Any:
    """tests/roundtrips.py of this tree, whichever tree the process imports code from."""
    spec = importlib.util.spec_from_file_location(
        "hotpath_roundtrips", HERE.parent.parent / "roundtrips.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _settled(conn: asyncpg.Connection, engagement: uuid.UUID, n: int, counter: Any) -> None:
    last = -1
    while True:
        done = await conn.fetchval(
            """
            SELECT count(*) = $2 AND NOT EXISTS (
                     SELECT 1 FROM messaging.outbox o WHERE o.delivered_at IS NULL)
            FROM orchestrator.flows f WHERE f.engagement_id = $1 AND EXISTS (
              SELECT 1 FROM orchestrator.flow_events e
              WHERE e.flow_id = f.id AND e.phase = $3 AND e.phase_status = $4)
            """,
            engagement,
            n,
            DATA_IMPORT,
            RUNNING,
        )
        if done and counter.total == last:
            return
        last = counter.total if done else -1
        await asyncio.sleep(0.3)


async def count_round_trips(url: str, flows: int, concurrency: int) -> Json:
    from dataclasses import replace

    from flowpair.v1 import orchestrator_pb2
    from tests.benchmarks.__main__ import closed_loop as loop
    from tests.support import Stack, discovery_flow, md, new_tenant

    roundtrips = _load_counter()
    stack = Stack(url)
    stack.relay = replace(stack.relay, poll_interval=600.0)  # no idle polls in the count
    conn = await asyncpg.connect(_dsn(url))
    out: Json = {}
    try:
        with roundtrips.counting() as counter:
            counter.ignore(conn)
            await stack.start_orchestrator()
            await stack.start_discovery()
            await stack.runner().stop()
            orch = stack.orchestrator()

            async def link(n: int, clients: int) -> float:
                tenant = new_tenant()
                request = orchestrator_pb2.CreateFlowRequest(flow=discovery_flow())
                metadata = md(tenant)
                before = counter.total
                await loop(n, clients, lambda: orch.CreateFlow(request, metadata=metadata))
                await _settled(conn, tenant.engagement_id, n, counter)
                return float(counter.total - before) / n

            await link(max(50, flows // 4), concurrency)  # warm-up: statements prepared
            for _ in range(3):
                await link(1, 1)
            out["single"] = min([await link(1, 1) for _ in range(3)])
            out["batched"] = await link(flows, concurrency)
    finally:
        await conn.close()
        await stack.close()
    return out


# -- the driver ----------------------------------------------------------------------------


def run_child(tree: Path, mode: str, url: str, flows: int, concurrency: int, logs: Path) -> Json:
    """One measurement in a process importing ``tree``'s code."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [
            sys.executable,
            str(HERE),
            "--child",
            mode,
            "--url",
            url,
            "--flows",
            str(flows),
            "--concurrency",
            str(concurrency),
            "--logs",
            str(logs),
        ],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{mode} on {tree} failed:\n{out.stderr[-3000:]}")
    result: Json = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def child(args: argparse.Namespace) -> Json:
    if args.child == "burst":
        return await burst(Path.cwd(), args.url, args.flows, args.concurrency, Path(args.logs))
    return await count_round_trips(args.url, args.flows, args.concurrency)


def median(values: list[float]) -> float:
    import statistics

    return float(statistics.median(values))


async def prepare_database(suffix: str = "") -> tuple[str, str, str]:
    from flowpair_shared import devstack
    from tests.benchmarks.__main__ import admin_url

    admin = admin_url()
    name = f"flowpair_hotpath_{os.getpid()}{suffix}"
    url = await devstack.ensure_database(admin, name)
    await asyncio.to_thread(devstack.migrate, url)
    return admin, name, url


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.hotpath", description=__doc__)
    p.add_argument("--flows", type=int, default=200)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--tree", type=Path, help="the other source tree (e.g. a worktree at main)")
    p.add_argument(
        "--baselines",
        action="store_true",
        help="also the pgbench floor (bench/floor.sql, 8 clients) and a bare echo's p99",
    )
    p.add_argument("--child", choices=("burst", "count"), help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--logs", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args)), default=str))
        return
    from flowpair_shared import devstack

    trees = {"this": ROOT}
    if args.tree is not None:
        trees["other"] = args.tree.resolve()
    admin, name, url = asyncio.run(prepare_database())
    work = Path(tempfile.mkdtemp(prefix="flowpair-hotpath-"))
    results: dict[str, list[Json]] = {t: [] for t in trees}
    baselines: Json = {}
    try:
        if args.baselines:
            from tests.benchmarks.__main__ import echo_baseline, pgbench_floor

            # On a database of its own: the floor's outbox rows are no messages a relay could
            # deliver (they would park, and load the first burst).
            _, floor_name, floor_url = asyncio.run(prepare_database("_floor"))
            try:
                baselines["floor"] = asyncio.run(pgbench_floor(floor_url, 8, 5, 1))["median"]
            finally:
                asyncio.run(devstack.drop_database(admin, floor_name))
            echo = asyncio.run(echo_baseline(1000, args.concurrency, 1))
            baselines["echo_p99_ms"] = echo["p99_ms"]
            print(f"baselines: {baselines}", file=sys.stderr)
        for run in range(args.runs):
            for label, tree in trees.items():
                logs = work / f"{label}-{run}"
                r = run_child(tree, "burst", url, args.flows, args.concurrency, logs)
                if run == 0:
                    r.update(run_child(tree, "count", url, args.flows, args.concurrency, logs))
                results[label].append(r)
                print(f"[{time.strftime('%H:%M:%S')}] run {run + 1} {label}: {r}", file=sys.stderr)
    finally:
        asyncio.run(devstack.drop_database(admin, name))
    keys = ("rate", "p50_ms", "p99_ms", "linked_per_s", "gated_per_s", "single", "batched")
    table = {
        label: {k: median([r[k] for r in rs if k in r]) for k in keys}
        for label, rs in results.items()
    }
    print(f"{'':14}" + "".join(f"{k:>14}" for k in keys))
    for label, row in table.items():
        print(f"{label:14}" + "".join(f"{row[k]:14.1f}" for k in keys))
    if "other" in table:
        ratio = {k: table["this"][k] / table["other"][k] for k in keys if table["other"][k]}
        print(f"{'this/other':14}" + "".join(f"{ratio.get(k, 0):14.2f}" for k in keys))
    if baselines:
        for label, row in table.items():
            print(
                f"{label}: linked {row['linked_per_s'] / baselines['floor']:.3f}x floor,"
                f" gated {row['gated_per_s'] / baselines['floor']:.4f}x floor,"
                f" CreateFlow p99 {row['p99_ms'] / baselines['echo_p99_ms']:.1f}x echo p99"
            )
    out = {"trees": {k: str(v) for k, v in trees.items()}, "medians": table, **baselines}
    print(json.dumps(out))


if __name__ == "__main__":
    sys.path.insert(0, str(Path.cwd()))
    main()
