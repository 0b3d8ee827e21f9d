"""Phases in worker processes: real services, real worker processes, signals and SQL.

To interrupt DATA_CLEANSING between two of its commits without racing it, a test takes the
row lock of the phase's job once a first page is committed: the worker's next checkpoint (and
lease renewal) waits on that lock, so the phase is held mid-way, with pages committed and
one page written but not, for as long as the test needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg

from flowpair.v1 import flow_pb2, orchestrator_pb2
from flowpair_shared.db import asyncpg_dsn
from flowpair_shared.domain import Phase, PhaseStatus
from flowpair_shared.tenancy import Tenant
from tests.benchmarks.__main__ import cmdb_rows
from tests.support import Process, Stack, eventually, fetch, fetchval, md, new_tenant

ROWS = 30_000
PAGE = 5_000
# A commit after every page of 5,000 rows, so a 30,000-row cleansing commits six times.
# Leases long enough that a page of cleansing on a loaded 2-core machine never outlasts one
# (the suite's 3 s would let them lapse, and a phase taken over three times fails).
ENV = {
    "FLOWPAIR_PHASE_COMMIT_ROWS": str(PAGE),
    "FLOWPAIR_PHASE_WORKERS": "2",
    "FLOWPAIR_PHASE_LEASE_SECONDS": "10",
}


def log_records(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a service's log (the workers write to the same file)."""
    records = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                records.append(record)
    return records


def logged(path: Path, msg: str, **fields: Any) -> list[dict[str, Any]]:
    return [
        r
        for r in log_records(path)
        if r.get("msg") == msg and all(r.get(k) == v for k, v in fields.items())
    ]


async def start(stack: Stack, log_dir: Path) -> tuple[Process, Process, dict[str, str]]:
    env = {**stack.env(), **ENV}
    orchestrator = Process("orchestrator_svc", env, log_dir / "orchestrator.log")
    discovery = Process("discovery_svc", env, log_dir / "discovery.log")
    await orchestrator.wait_serving(stack.orchestrator_port)
    await discovery.wait_serving(stack.discovery_port)
    return orchestrator, discovery, env


async def create_flow(stack: Stack, tenant: Tenant, rows: int) -> tuple[str, int]:
    """An auto-approved flow on a ``rows``-row export: its name and the import's row count."""
    uploaded = await stack.upload(tenant, cmdb_rows(rows))
    flow = orchestrator_pb2.Flow(
        type=flow_pb2.FLOW_TYPE_DISCOVERY, auto_approve=True, allow_concurrent=True
    )
    flow.data_import = uploaded.name
    created = await stack.orchestrator().CreateFlow(
        orchestrator_pb2.CreateFlowRequest(flow=flow), metadata=md(tenant)
    )
    return created.flow.name, uploaded.row_count


async def completed(stack: Stack, tenant: Tenant, name: str) -> None:
    async def done() -> bool:
        flow = await stack.orchestrator().GetFlow(
            orchestrator_pb2.GetFlowRequest(name=name), metadata=md(tenant)
        )
        assert flow.flow.status != flow_pb2.FLOW_STATUS_FAILED, flow.flow
        return bool(flow.flow.status == flow_pb2.FLOW_STATUS_COMPLETED)

    await eventually(done, timeout=180, interval=0.2)


async def cleansed(url: str, name: str) -> None:
    """Wait for DATA_CLEANSING to complete (the phases after it are not under test)."""
    master = uuid.UUID(name.split("/")[1])

    async def done() -> bool:
        status = await fetchval(
            url,
            "SELECT p.status FROM discovery.child_phases p JOIN discovery.child_flows c"
            " ON c.id = p.child_flow_id WHERE c.master_flow_id = $1 AND p.phase = $2",
            master,
            int(Phase.DATA_CLEANSING),
        )
        assert status != PhaseStatus.FAILED
        return bool(status == PhaseStatus.COMPLETED)

    await eventually(done, timeout=180, interval=0.2)


async def cleansing_job(url: str) -> asyncpg.Record:
    """The DATA_CLEANSING job once its first page is committed."""

    async def first_page() -> asyncpg.Record | None:
        rows = await fetch(
            url,
            "SELECT id, state, attempts, progress FROM discovery.phase_jobs"
            " WHERE phase = $1 AND progress IS NOT NULL",
            int(Phase.DATA_CLEANSING),
        )
        return rows[0] if rows else None

    job: asyncpg.Record = await eventually(first_page, timeout=180, interval=0.02)
    assert job["state"] == "running", "the cleansing ended before the test could hold it"
    return job


@contextlib.asynccontextmanager
async def holding(url: str, job_id: int) -> AsyncIterator[asyncpg.Connection]:
    """The job's row locked: the worker's next checkpoint waits until this exits."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        async with conn.transaction():
            state = await conn.fetchval(
                "SELECT state FROM discovery.phase_jobs WHERE id = $1 FOR UPDATE", job_id
            )
            assert state == "running", "the cleansing ended before the test could hold it"
            yield conn
    finally:
        await conn.close()


def holder_pid(log: Path, job_id: int) -> int:
    started = logged(log, "phase job started", job_id=job_id)
    assert started, "no worker logged starting the job"
    pid: int = started[-1]["pid"]
    return pid


async def one_cleansed_row_per_raw_row(url: str, name: str, row_count: int) -> None:
    master = uuid.UUID(name.split("/")[1])
    child = await fetchval(
        url, "SELECT id FROM discovery.child_flows WHERE master_flow_id = $1", master
    )
    cleansed = await fetch(
        url,
        "SELECT count(*) AS n, count(DISTINCT row_number) AS rows, min(row_number) AS first,"
        " max(row_number) AS last FROM discovery.cleansed_records WHERE child_flow_id = $1",
        child,
    )
    assert tuple(cleansed[0]) == (row_count, row_count, 1, row_count)
    repeated = await fetchval(
        url,
        "SELECT count(*) FROM (SELECT 1 FROM discovery.cleansing_issues WHERE child_flow_id = $1"
        " GROUP BY row_number, attribute, value, problem HAVING count(*) > 1) d",
        child,
    )
    assert repeated == 0

    async def completions() -> int:
        n: int = await fetchval(
            url,
            "SELECT count(*) FROM orchestrator.flow_events"
            " WHERE flow_id = $1 AND phase = $2 AND phase_status = $3",
            master,
            int(Phase.DATA_CLEANSING),
            int(PhaseStatus.COMPLETED),
        )
        return n

    assert await eventually(completions, timeout=60) == 1


async def test_phases_run_in_worker_processes(stack: Stack, tmp_path: Path) -> None:
    orchestrator, discovery, _ = await start(stack, tmp_path)
    try:
        tenant = new_tenant()
        name, _rows = await create_flow(stack, tenant, 200)
        await completed(stack, tenant, name)
        log = tmp_path / "discovery.log"
        workers = {r["pid"] for r in logged(log, "phase worker started")}
        assert len(workers) == 2
        ran = logged(log, "phase finished")
        assert len(ran) == 6  # every phase after INITIALIZATION
        assert {r["pid"] for r in ran} <= workers
        assert discovery.proc.pid not in workers
    finally:
        orchestrator.close()
        discovery.close()


async def test_sigkilled_worker_mid_cleansing_is_restarted_and_the_phase_resumes_once(
    stack: Stack, tmp_path: Path
) -> None:
    """A worker killed between two commits of DATA_CLEANSING is restarted; the job, taken
    over when its lease expires, resumes after the last committed page, and the flow
    completes with exactly one cleansed row per raw row and one completion of the phase."""
    orchestrator, discovery, _ = await start(stack, tmp_path)
    log = tmp_path / "discovery.log"
    try:
        tenant = new_tenant()
        name, row_count = await create_flow(stack, tenant, ROWS)
        job = await cleansing_job(stack.database_url)
        async with holding(stack.database_url, job["id"]):
            victim = holder_pid(log, job["id"])
            os.kill(victim, signal.SIGKILL)
            await eventually(
                lambda: _true(logged(log, "phase worker died; restarting it", pid=victim)),
                timeout=30,
            )
        await cleansed(stack.database_url, name)
        started = logged(log, "phase job started", job_id=job["id"])
        assert started[0]["pid"] == victim
        # A loaded machine may let a lease lapse again; every run after the kill resumes.
        resumed = started[1]
        assert resumed["pid"] != victim
        assert resumed["attempt"] == 2
        assert resumed["resume_from"]["after_row"] >= PAGE  # not from the start
        await one_cleansed_row_per_raw_row(stack.database_url, name, row_count)
        assert discovery.proc.poll() is None  # the service itself lived on
    finally:
        orchestrator.close()
        discovery.close()


async def test_a_stale_lease_holder_cannot_commit(stack: Stack, tmp_path: Path) -> None:
    """The job's lease is taken over in SQL while its worker is mid-cleansing: the worker
    commits nothing more for it (no page, no outcome), and the phase stays RUNNING."""
    orchestrator, discovery, _ = await start(stack, tmp_path)
    log = tmp_path / "discovery.log"
    try:
        tenant = new_tenant()
        name, row_count = await create_flow(stack, tenant, ROWS)
        job = await cleansing_job(stack.database_url)
        ours = uuid.uuid4()
        # Waits for a checkpoint in progress, if any, and returns what it committed.
        taken = await fetch(
            stack.database_url,
            "UPDATE discovery.phase_jobs SET lease_token = $2,"
            " lease_until = now() + interval '1 hour' WHERE id = $1 AND state = 'running'"
            " RETURNING progress",
            job["id"],
            ours,
        )
        assert taken, "the cleansing ended before the test could take it over"
        committed = json.loads(taken[0]["progress"])["rows"]
        assert committed < row_count

        def noticed() -> bool:
            return bool(
                logged(log, "phase job lost its lease; its uncommitted work is discarded")
                or logged(log, "phase job lost its lease (cancelled or taken over); stopping it")
                or logged(log, "phase result discarded: job cancelled or taken over")
            )

        await eventually(lambda: _true(noticed()), timeout=60)
        master = uuid.UUID(name.split("/")[1])
        child = await fetchval(
            stack.database_url,
            "SELECT id FROM discovery.child_flows WHERE master_flow_id = $1",
            master,
        )
        assert (
            await fetchval(
                stack.database_url,
                "SELECT count(*) FROM discovery.cleansed_records WHERE child_flow_id = $1",
                child,
            )
            == committed
        )
        rows = await fetch(
            stack.database_url,
            "SELECT state, lease_token, progress FROM discovery.phase_jobs WHERE id = $1",
            job["id"],
        )
        assert rows[0]["state"] == "running"
        assert rows[0]["lease_token"] == ours
        assert json.loads(rows[0]["progress"])["rows"] == committed
        assert (
            await fetchval(
                stack.database_url,
                "SELECT status FROM discovery.child_phases WHERE child_flow_id = $1 AND phase = $2",
                child,
                int(Phase.DATA_CLEANSING),
            )
            == PhaseStatus.RUNNING
        )
    finally:
        orchestrator.close()
        discovery.close()


async def test_sigterm_hands_the_running_phase_back_and_another_process_resumes_it(
    stack: Stack, tmp_path: Path
) -> None:
    """SIGTERM of the discovery service mid-cleansing: its worker checkpoints and releases the
    job (lease expiry and token cleared, the attempt not counted), the service exits 0, and a
    new discovery process resumes after the committed pages and completes the flow."""
    orchestrator, discovery, env = await start(stack, tmp_path)
    log = tmp_path / "discovery.log"
    try:
        tenant = new_tenant()
        name, row_count = await create_flow(stack, tenant, ROWS)
        job = await cleansing_job(stack.database_url)
        async with holding(stack.database_url, job["id"]):
            discovery.proc.send_signal(signal.SIGTERM)
            # Release the held checkpoint only once the worker knows it is stopping.
            await eventually(lambda: _true(logged(log, "phase worker stopping")), timeout=30)
        assert await asyncio.to_thread(discovery.proc.wait, 30) == 0
        rows = await fetch(
            stack.database_url,
            "SELECT state, lease_until, lease_token, attempts, progress"
            " FROM discovery.phase_jobs WHERE id = $1",
            job["id"],
        )
        released = rows[0]
        assert released["state"] == "queued"
        assert released["lease_until"] is None
        assert released["lease_token"] is None
        assert released["attempts"] == 0  # a handover is not an attempt
        progress = json.loads(released["progress"])
        assert PAGE <= progress["after_row"] < row_count
        assert logged(log, "interrupted job requeued", job_id=job["id"])

        discovery = Process("discovery_svc", env, tmp_path / "discovery2.log")
        await discovery.wait_serving(stack.discovery_port)
        await cleansed(stack.database_url, name)
        resumed = logged(tmp_path / "discovery2.log", "phase job started", job_id=job["id"])
        assert resumed[0]["resume_from"] == progress
        await one_cleansed_row_per_raw_row(stack.database_url, name, row_count)
    finally:
        orchestrator.close()
        discovery.close()


async def _true(value: bool | list[Any]) -> bool:
    return bool(value)
