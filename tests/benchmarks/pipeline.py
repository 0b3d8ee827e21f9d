"""The big-file pipeline: a generated CMDB export from upload to COMPLETED, auto-approved, with
the seconds of every phase and a digest of the inventory it built.

    python tests/benchmarks/pipeline.py --rows 200000 [--against ../main-worktree] [--rounds 2]

Each journey runs in its own process against a fresh database with both services started as
deployed. With ``--against DIR`` the rounds alternate between this checkout and DIR (another
worktree, its protos generated), so the two are measured under the same load; the digests say
whether both built the same inventory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg

from flowpair.v1 import flow_pb2, orchestrator_pb2
from flowpair_shared import devstack
from flowpair_shared.db import asyncpg_dsn
from tests.benchmarks.__main__ import cmdb_rows
from tests.support import ROOT, Process, Stack, md, new_tenant

Json = dict[str, Any]

# What a client sees of the inventory, without ids or times: equal digests, equal inventories.
_DIGEST = """
SELECT md5(coalesce((SELECT string_agg(row(a.dedupe_key, a.asset_type, a.display_name,
          a.hostname, a.domain, a.ip_address, a.operating_system, a.os_family, a.os_version,
          a.cpu_cores, a.memory_gb, a.storage_gb, a.environment, a.application_name, a.owner,
          a.location, a.business_criticality, a.serial_number, a.attributes)::text, '|'
          ORDER BY a.dedupe_key) FROM discovery.assets a WHERE a.engagement_id = $1), '')
       || coalesce((SELECT string_agg(row(s.dedupe_key, t.dedupe_key, d.kind,
          regexp_replace(d.evidence, 'imports/[0-9a-f-]+', 'imports'))::text,
          '|' ORDER BY s.dedupe_key, t.dedupe_key, d.kind) FROM discovery.dependencies d
          JOIN discovery.assets s ON s.id = d.source_asset_id
          JOIN discovery.assets t ON t.id = d.target_asset_id WHERE d.engagement_id = $1), '')
       || coalesce((SELECT string_agg(row(i.row_number, i.attribute, i.value, i.problem)::text,
          '|' ORDER BY i.row_number, i.attribute, i.value, i.problem)
          FROM discovery.cleansing_issues i JOIN discovery.child_flows c ON c.id = i.child_flow_id
          WHERE c.engagement_id = $1), '')) AS digest,
       (SELECT count(*) FROM discovery.assets WHERE engagement_id = $1) AS assets,
       (SELECT count(*) FROM discovery.dependencies WHERE engagement_id = $1) AS dependencies
"""


@contextlib.asynccontextmanager
async def services(url: str, logs: Path) -> AsyncIterator[Stack]:
    """Both services in their own processes with the deployed phase lease (30 s): the test
    stacks' 3 s lease is lost on a loaded machine whenever a batch holds the event loop."""
    await asyncio.to_thread(logs.mkdir, parents=True, exist_ok=True)
    stack = Stack(url, overrides={"phase_lease_seconds": 30.0})
    processes: tuple[Process, ...] = await stack.start_processes(logs)
    try:
        yield stack
    finally:
        await stack.close()
        for p in processes:
            with contextlib.suppress(Exception):
                p.terminate()
            p.close()


async def journey(url: str, rows: int, logs: Path) -> Json:
    """Upload ``rows`` rows, run an auto-approved flow to COMPLETED; per-phase seconds from the
    flow's events, and the inventory's digest."""
    async with services(url, logs) as stack:
        tenant = new_tenant()
        began = time.perf_counter()
        imp = await stack.upload(tenant, cmdb_rows(rows))
        phases: Json = {"UPLOAD": round(time.perf_counter() - began, 1)}
        flow = orchestrator_pb2.Flow(type=flow_pb2.FLOW_TYPE_DISCOVERY, auto_approve=True)
        setattr(flow, "import", imp.name)
        created = await stack.orchestrator().CreateFlow(
            orchestrator_pb2.CreateFlowRequest(flow=flow), metadata=md(tenant)
        )
        stream = stack.orchestrator().WatchFlow(
            orchestrator_pb2.WatchFlowRequest(name=created.flow.name), metadata=md(tenant)
        )
        running: dict[int, float] = {}
        async for update in stream:
            e = update.event
            at = e.occur_time.ToDatetime().timestamp()
            if e.phase_status == flow_pb2.PHASE_STATUS_RUNNING:
                running[e.phase] = at
            elif e.phase_status == flow_pb2.PHASE_STATUS_COMPLETED and e.phase in running:
                name = flow_pb2.Phase.Name(e.phase).removeprefix("PHASE_")
                phases[name] = round(at - running[e.phase], 1)
            if e.flow_status in (flow_pb2.FLOW_STATUS_COMPLETED, flow_pb2.FLOW_STATUS_FAILED):
                assert e.flow_status == flow_pb2.FLOW_STATUS_COMPLETED, e
                break
        seconds = round(time.perf_counter() - began, 1)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        inventory = dict(await conn.fetchrow(_DIGEST, tenant.engagement_id) or {})
    finally:
        await conn.close()
    return {"rows": rows, "seconds": seconds, "phases": phases, **inventory}


async def one(rows: int, keep: bool) -> Json:
    admin = (
        os.environ.get("FLOWPAIR_TEST_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or devstack.embedded_admin_url("pg-test")
    )
    name = f"flowpair_pipeline_{os.getpid()}"
    url = await devstack.ensure_database(admin, name)
    try:
        await asyncio.to_thread(devstack.migrate, url)
        logs = Path(tempfile.mkdtemp(prefix="flowpair-pipeline-"))
        return {"code": str(ROOT), "database": name, **await journey(url, rows, logs)}
    finally:
        if not keep:
            await devstack.drop_database(admin, name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--against", type=Path, help="another checkout, measured alternately")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the databases (to EXPLAIN in them)")
    p.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.single:
        print(json.dumps(asyncio.run(one(args.rows, args.keep)), default=str), flush=True)
        return
    checkouts = [ROOT] + ([args.against.resolve()] if args.against else [])
    for round_ in range(args.rounds):
        for code in checkouts if round_ % 2 == 0 else checkouts[::-1]:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--rows",
                    str(args.rows),
                    "--single",
                    *(["--keep"] if args.keep else []),
                ],
                env={**os.environ, "PYTHONPATH": str(code)},
                cwd=code,
                capture_output=True,
                text=True,
            )
            if out.returncode:
                print(json.dumps({"code": str(code), "failed": out.stderr[-3000:]}), flush=True)
            else:
                print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
