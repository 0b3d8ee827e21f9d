"""`make bench`: flow creation against a bare gRPC echo, measured in one run.

Absolute numbers depend on the machine and its neighbours; the ratio to the echo baseline,
measured seconds apart in the same process, is the figure to compare across runs.

    python -m tests.benchmarks [--flows N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc

from flowpair.v1 import flow_pb2, orchestrator_pb2
from flowpair_shared import devstack
from flowpair_shared.db import asyncpg_dsn
from tests.support import Stack, discovery_flow, eventually, fetchval, md, new_tenant

ECHO = "/bench.Echo/Echo"


async def _rate(n: int, concurrency: int, call: Callable[[], Awaitable[Any]]) -> float:
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - started)


async def echo_baseline(n: int, concurrency: int) -> float:
    async def echo(request: bytes, _context: Any) -> bytes:
        return request

    class Handler(grpc.GenericRpcHandler):
        def service(self, _details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any]:
            return grpc.unary_unary_rpc_method_handler(echo)

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((Handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        call: Any = ch.unary_unary(ECHO)
        await _rate(200, concurrency, lambda: call(b"x" * 64))  # warm-up
        rate = await _rate(n, concurrency, lambda: call(b"x" * 64))
    await server.stop(0)
    return rate


async def flow_creation(url: str, n: int, concurrency: int) -> tuple[float, float]:
    """Both services in their own processes, as deployed; the client in this one."""
    stack = Stack(url)
    logs = Path(tempfile.mkdtemp(prefix="flowpair-bench-"))
    orchestrator, discovery = await stack.start_processes(logs)
    try:
        orch, tenant = stack.orchestrator(), new_tenant()
        # On an import nobody uploaded: after linking, DATA_IMPORT runs and fails, so each
        # flow also costs a RunPhase command, a phase job and three more events.
        req = orchestrator_pb2.CreateFlowRequest(flow=discovery_flow())
        await _rate(200, concurrency, lambda: orch.CreateFlow(req, metadata=md(tenant)))
        total = n + 200

        async def linked() -> bool:
            done = await fetchval(
                url, "SELECT count(*) FROM orchestrator.flows WHERE child_flow_id IS NOT NULL"
            )
            return bool(done == 200)

        await eventually(linked, timeout=120)
        started = time.perf_counter()
        rate = await _rate(n, concurrency, lambda: orch.CreateFlow(req, metadata=md(tenant)))

        async def all_linked() -> bool:
            done = await fetchval(
                url, "SELECT count(*) FROM orchestrator.flows WHERE child_flow_id IS NOT NULL"
            )
            return bool(done == total)

        await eventually(all_linked, timeout=600, interval=0.02)
        end_to_end = n / (time.perf_counter() - started)
        return rate, end_to_end
    finally:
        await stack.close()
        orchestrator.terminate()
        discovery.terminate()


ROW = b"web%07d.corp.example.com,10.1.2.3,RHEL 8.6,16 GB,Production,Jane Doe,EMEA\n"


async def upload_vs_copy(url: str, rows: int) -> tuple[float, float, float]:
    """Rows/s of a streamed CSV upload (parse + COPY in batches) and of a bare asyncpg COPY of
    the same, already parsed rows into the same table; and the upload's MB/s."""
    stack = Stack(url)
    logs = Path(tempfile.mkdtemp(prefix="flowpair-bench-"))
    orchestrator, discovery = await stack.start_processes(logs)
    try:

        def chunks() -> Iterator[bytes]:
            yield b"host,ip,os,ram,env,owner,region\n"
            for start in range(0, rows, 10_000):
                yield b"".join(ROW % i for i in range(start, min(rows, start + 10_000)))

        size = sum(len(c) for c in chunks())
        started = time.perf_counter()
        imp = await stack.upload(new_tenant(), chunks())
        upload_s = time.perf_counter() - started
        assert imp.row_count == rows
    finally:
        await stack.close()
        orchestrator.terminate()
        discovery.terminate()
    tenant = new_tenant()  # the rows' tenant columns, which the upload's transaction fills
    records = [
        (
            uuid.UUID(int=1),
            i + 1,
            i + 2,
            (ROW % i).decode().rstrip("\n").split(","),
            tenant.client_account_id,
            tenant.engagement_id,
        )
        for i in range(rows)
    ]
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table(
                "raw_records",
                schema_name="discovery",
                columns=[
                    "import_id",
                    "row_number",
                    "line_number",
                    "values",
                    "client_account_id",
                    "engagement_id",
                ],
                records=records,
            )
        copy_s = time.perf_counter() - started
    finally:
        await conn.close()
    return rows / upload_s, rows / copy_s, size / upload_s / 2**20


_OSES = (b"RHEL 8.6", b"Win2k19", b"Microsoft Windows Server 2016 Standard", b"Ubuntu 22.04 LTS")
_RAM = (b"16 GB", b"16384 MB", b"32g", b"8")
_ENVS = (b"prod", b"Production", b"PRD", b"dev", b"UAT")
_TYPES = (b"Linux Server", b"Windows Server", b"Database", b"Virtual Machine")


def cmdb_rows(rows: int) -> Iterator[bytes]:
    """A CMDB export of ``rows`` distinct hosts, 50 applications, a dependency every 10th row."""
    yield b"Name,Type,Host Name,IP Address,OS,RAM,vCPU,Environment,Application,Depends On\n"
    for start in range(0, rows, 10_000):
        out = []
        for i in range(start, min(rows, start + 10_000)):
            dep = b"srv%07d" % ((i + 1) % rows) if i % 10 == 0 else b""
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


async def discovery_flow_phases(url: str, rows: int) -> tuple[float, dict[str, float]]:
    """Upload a ``rows``-row export and run an auto-approved flow to COMPLETED; total seconds
    from the first byte uploaded, and seconds per phase (from the flow's event times)."""
    stack = Stack(url)
    logs = Path(tempfile.mkdtemp(prefix="flowpair-bench-"))
    orchestrator, discovery = await stack.start_processes(logs)
    tenant = new_tenant()
    try:
        started = time.perf_counter()
        imp = await stack.upload(tenant, cmdb_rows(rows))
        uploaded = time.perf_counter() - started
        flow = orchestrator_pb2.Flow(type=flow_pb2.FLOW_TYPE_DISCOVERY, auto_approve=True)
        setattr(flow, "import", imp.name)
        created = await stack.orchestrator().CreateFlow(
            orchestrator_pb2.CreateFlowRequest(flow=flow), metadata=md(tenant)
        )
        stream = stack.orchestrator().WatchFlow(
            orchestrator_pb2.WatchFlowRequest(name=created.flow.name), metadata=md(tenant)
        )
        began: dict[int, float] = {}
        phases = {"upload": uploaded}
        async for update in stream:
            e = update.event
            at = e.occur_time.ToDatetime().timestamp()
            if e.phase_status == flow_pb2.PHASE_STATUS_RUNNING:
                began[e.phase] = at
            elif e.phase_status == flow_pb2.PHASE_STATUS_COMPLETED and e.phase in began:
                phases[flow_pb2.Phase.Name(e.phase).removeprefix("PHASE_")] = at - began[e.phase]
            if e.flow_status in (flow_pb2.FLOW_STATUS_COMPLETED, flow_pb2.FLOW_STATUS_FAILED):
                assert e.flow_status == flow_pb2.FLOW_STATUS_COMPLETED, e
                break
        return time.perf_counter() - started, phases
    finally:
        await stack.close()
        orchestrator.terminate()
        discovery.terminate()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flows", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--flow-rows", type=int, default=200_000)
    args = parser.parse_args()
    admin = (
        os.environ.get("FLOWPAIR_TEST_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or devstack.embedded_admin_url("pg-test")
    )
    name = f"flowpair_bench_{os.getpid()}"
    url = await devstack.ensure_database(admin, name)
    await asyncio.to_thread(devstack.migrate, url)
    try:
        echo = await echo_baseline(args.flows * 2, args.concurrency)
        create, e2e = await flow_creation(url, args.flows, args.concurrency)
        upload_rate, copy_rate, upload_mb = await upload_vs_copy(url, args.rows)
        total, phases = await discovery_flow_phases(url, args.flow_rows)
    finally:
        await devstack.drop_database(admin, name)
    print(
        f"flows={args.flows} concurrency={args.concurrency};"
        " client in this process, each service in its own"
    )
    print(f"{'bare grpc.aio echo':40s} {echo:9.0f} calls/s   1.00")
    print(f"{'CreateFlow (master + outbox, 1 tx)':40s} {create:9.0f} calls/s   {create / echo:.2f}")
    print(f"{'flows fully linked (child + event back)':40s} {e2e:9.0f} flows/s   {e2e / echo:.2f}")
    print(f"\nrows={args.rows}")
    print(f"{'bare asyncpg COPY of parsed rows':40s} {copy_rate:9.0f} rows/s    1.00")
    print(
        f"{'UploadImportData (gRPC, parse, COPY)':40s} {upload_rate:9.0f} rows/s    "
        f"{upload_rate / copy_rate:.2f}   ({upload_mb:.0f} MB/s)"
    )
    print(f"\nflow-rows={args.flow_rows}: upload to COMPLETED, auto-approved")
    for phase, seconds in phases.items():
        print(f"{phase:40s} {seconds:9.1f} s   {args.flow_rows / seconds:9.0f} rows/s")
    print(
        f"{'whole journey':40s} {total:9.1f} s   {args.flow_rows / total:9.0f} rows/s"
        f"   {args.flow_rows / total / copy_rate:.2f} of bare COPY"
    )


if __name__ == "__main__":
    asyncio.run(main())
