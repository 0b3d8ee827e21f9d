"""Services in real OS processes: SIGKILL mid-traffic, SIGTERM for an orderly stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from flowpair.v1 import flow_pb2, orchestrator_pb2
from tests.support import Process, Stack, eventually, fetch, fetchval, md, new_tenant

REQ = orchestrator_pb2.CreateFlowRequest(
    flow=orchestrator_pb2.Flow(type=flow_pb2.FLOW_TYPE_DISCOVERY)
)


async def _every_flow_has_one_child(database_url: str, expected: int) -> None:
    async def linked() -> bool:
        n = await fetchval(
            database_url, "SELECT count(*) FROM orchestrator.flows WHERE child_flow_id IS NOT NULL"
        )
        return bool(n == expected)

    await eventually(linked, timeout=60)
    rows = await fetch(
        database_url,
        """
        SELECT f.id, f.child_flow_id, f.last_event_seq,
          (SELECT count(*) FROM discovery.child_flows c WHERE c.master_flow_id = f.id) AS children,
          (SELECT count(*) FROM orchestrator.flow_events e WHERE e.flow_id = f.id) AS events,
          (SELECT c.id FROM discovery.child_flows c WHERE c.master_flow_id = f.id) AS child_id
        FROM orchestrator.flows f
        """,
    )
    assert len(rows) == expected
    assert all(r["children"] == 1 for r in rows)
    assert all(r["events"] == 1 and r["last_event_seq"] == 1 for r in rows)
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
