"""Services in real OS processes: SIGKILL mid-traffic, SIGTERM for an orderly stop."""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path

import grpc
import pytest

from flowpair.v1 import flow_pb2, orchestrator_pb2
from tests.support import (
    Process,
    Stack,
    discovery_flow,
    eventually,
    fetch,
    fetchval,
    md,
    new_tenant,
)

REQ = orchestrator_pb2.CreateFlowRequest(flow=discovery_flow())


async def _every_flow_has_one_child(database_url: str, expected: int) -> None:
    """Each flow has one child and its whole event chain applied once, in order: CREATED,
    INITIALIZATION completed, DATA_IMPORT running, DATA_IMPORT failed (no upload)."""

    async def settled() -> bool:
        n = await fetchval(
            database_url,
            "SELECT count(*) FROM orchestrator.flows WHERE status = 6 AND last_event_seq = 3",
        )
        return bool(n == expected)

    try:
        await eventually(settled, timeout=90)
    except AssertionError:
        states = await fetch(
            database_url,
            "SELECT status, last_event_seq, count(*) FROM orchestrator.flows GROUP BY 1, 2",
        )
        outbox = await fetch(
            database_url,
            "SELECT source, method, delivered_at IS NOT NULL AS delivered, parked_at IS NOT NULL"
            " AS parked, count(*), max(last_error) FROM messaging.outbox GROUP BY 1, 2, 3, 4",
        )
        jobs = await fetch(
            database_url, "SELECT state, attempts, count(*) FROM discovery.phase_jobs GROUP BY 1, 2"
        )
        raise AssertionError(
            f"flows did not settle: {[tuple(r) for r in states]}; outbox"
            f" {[tuple(r) for r in outbox]}; jobs {[tuple(r) for r in jobs]}"
        ) from None
    rows = await fetch(
        database_url,
        """
        SELECT f.id, f.child_flow_id, f.last_event_seq,
          (SELECT count(*) FROM discovery.child_flows c WHERE c.master_flow_id = f.id) AS children,
          (SELECT count(*) FROM orchestrator.flow_events e WHERE e.flow_id = f.id) AS events,
          (SELECT array_agg(e.seq ORDER BY e.seq) FROM orchestrator.flow_events e
           WHERE e.flow_id = f.id) AS seqs,
          (SELECT array_agg(e.source_sequence ORDER BY e.seq) FROM orchestrator.flow_events e
           WHERE e.flow_id = f.id) AS sources,
          (SELECT c.id FROM discovery.child_flows c WHERE c.master_flow_id = f.id) AS child_id
        FROM orchestrator.flows f
        """,
    )
    assert len(rows) == expected
    assert all(r["children"] == 1 for r in rows)
    assert all(r["seqs"] == [1, 2, 3, 4] for r in rows)
    assert all(r["sources"] == [None, 1, 2, 3] for r in rows)
    assert all(r["child_flow_id"] == r["child_id"] for r in rows)
    assert await fetchval(database_url, "SELECT count(*) FROM discovery.child_flows") == expected
    assert (
        await fetchval(
            database_url, "SELECT count(*) FROM messaging.outbox WHERE parked_at IS NOT NULL"
        )
        == 0
    )


async def test_kill_9_discovery_while_flows_are_created(stack: Stack, tmp_path: Path) -> None:
    env = stack.env()
    orchestrator, discovery = await stack.start_processes(tmp_path)
    try:
        orch = stack.orchestrator()
        tenant = new_tenant()
        created = 0

        async def create(n: int) -> None:
            nonlocal created
            for _ in range(n):
                await orch.CreateFlow(REQ, metadata=md(tenant))
                created += 1

        writers = [asyncio.create_task(create(40)) for _ in range(5)]
        await eventually(lambda: _at_least(lambda: created, 60))
        discovery.kill()  # mid-traffic: some child transactions in flight, some unacknowledged
        killed_at = created
        await eventually(lambda: _at_least(lambda: created, killed_at + 40))
        discovery = Process("discovery_svc", env, tmp_path / "discovery.log")
        await asyncio.gather(*writers)
        assert created == 200
        await _every_flow_has_one_child(stack.database_url, 200)
    finally:
        orchestrator.close()
        discovery.close()


async def test_kill_9_orchestrator_while_flows_are_created(stack: Stack, tmp_path: Path) -> None:
    """Flows whose CreateFlow returned OK all get their child; none is half-created."""
    env = stack.env()
    orchestrator, discovery = await stack.start_processes(tmp_path)
    try:
        orch = stack.orchestrator()
        tenant = new_tenant()
        acknowledged: list[str] = []

        async def create() -> None:
            while True:
                try:
                    r = await orch.CreateFlow(REQ, metadata=md(tenant), timeout=2)
                except grpc.aio.AioRpcError:
                    return
                acknowledged.append(r.flow.name)

        writers = [asyncio.create_task(create()) for _ in range(5)]
        await eventually(lambda: _at_least(lambda: len(acknowledged), 50))
        orchestrator.kill()
        await asyncio.gather(*writers)
        orchestrator = Process("orchestrator_svc", env, tmp_path / "orchestrator.log")
        await orchestrator.wait_serving(stack.orchestrator_port)
        total = await fetchval(stack.database_url, "SELECT count(*) FROM orchestrator.flows")
        assert total >= len(acknowledged)  # committed-but-unanswered flows exist too
        names = {
            f"flows/{r['id']}"
            for r in await fetch(stack.database_url, "SELECT id FROM orchestrator.flows")
        }
        assert set(acknowledged) <= names
        await _every_flow_has_one_child(stack.database_url, total)
    finally:
        orchestrator.close()
        discovery.close()


async def _at_least(value: object, n: int) -> bool:
    assert callable(value)
    return bool(value() >= n)


@pytest.mark.parametrize("module", ["orchestrator_svc", "discovery_svc"])
async def test_sigterm_drains_and_exits_cleanly(stack: Stack, tmp_path: Path, module: str) -> None:
    proc = Process(module, stack.env(), tmp_path / "svc.log")
    try:
        port = stack.orchestrator_port if module == "orchestrator_svc" else stack.discovery_port
        await proc.wait_serving(port)
        code = await asyncio.to_thread(proc.terminate)
        assert code == 0
        log = proc.log_path.read_text()
        assert '"msg": "shutdown requested"' in log
        assert '"msg": "stopped"' in log
    finally:
        proc.close()


async def test_kill_9_while_phases_run_applies_every_event_once_in_order(
    stack: Stack, tmp_path: Path
) -> None:
    """Both services are SIGKILLed at random points while 20 flows run their phases
    (including between an event's commit and its acknowledgement); every flow still reaches
    the approval gate with its history complete, gap-free and without repeats."""
    env = stack.env()
    orchestrator, discovery = await stack.start_processes(tmp_path)
    try:
        tenant = new_tenant()
        header = b"host,ip,os\n"
        rows = b"".join(
            b"web%04d,10.0.%d.%d,RHEL 8.6\n" % (i, i // 256, i % 256) for i in range(2000)
        )
        imp = await stack.upload(tenant, header + rows)
        import_id = uuid.UUID(imp.name.split("/")[1])
        orch = stack.orchestrator()
        request = orchestrator_pb2.CreateFlowRequest(flow=discovery_flow(import_id=import_id))
        for _ in range(20):
            await orch.CreateFlow(request, metadata=md(tenant))
        rng = random.Random(11)
        for round_ in range(4):
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            if round_ % 2 == 0:
                orchestrator.kill()
                orchestrator = Process("orchestrator_svc", env, tmp_path / "orchestrator.log")
                await orchestrator.wait_serving(stack.orchestrator_port)
            else:
                discovery.kill()
                discovery = Process("discovery_svc", env, tmp_path / "discovery.log")
                await discovery.wait_serving(stack.discovery_port)

        async def at_gate() -> bool:
            n = await fetchval(
                stack.database_url,
                "SELECT count(*) FROM orchestrator.flows WHERE status = $1",
                flow_pb2.FLOW_STATUS_WAITING_FOR_APPROVAL,
            )
            return bool(n == 20)

        await eventually(at_gate, timeout=120)
        rows_ = await fetch(
            stack.database_url,
            """
            SELECT f.id,
              (SELECT array_agg(e.seq ORDER BY e.seq) FROM orchestrator.flow_events e
               WHERE e.flow_id = f.id) AS seqs,
              (SELECT array_agg(e.source_sequence ORDER BY e.seq) FROM orchestrator.flow_events e
               WHERE e.flow_id = f.id) AS sources
            FROM orchestrator.flows f
            """,
        )
        assert len(rows_) == 20
        for r in rows_:
            assert r["seqs"] == list(range(1, 9)), r
            assert r["sources"] == [None, *range(1, 8)], r
        assert (
            await fetchval(
                stack.database_url,
                "SELECT count(*) FROM messaging.outbox WHERE parked_at IS NOT NULL",
            )
            == 0
        )
    finally:
        orchestrator.close()
        discovery.close()
