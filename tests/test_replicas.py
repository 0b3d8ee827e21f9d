"""Two orchestrators and two discovery services, mutual TLS between every pair: flows created
and driven through any replica reach COMPLETED, and every replica served internal calls."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from flowpair.v1 import discovery_pb2, flow_pb2, orchestrator_pb2
from flowpair_shared.tenancy import Tenant
from tests.support import (
    ROOT,
    Process,
    Stack,
    approve_waiving_gaps,
    eventually,
    free_port,
    md,
    new_tenant,
)

EXAMPLE = ROOT / "examples" / "inventory.csv"
FLOWS = 6


async def _drive(stack: Stack, tenant: Tenant, name: str) -> int:
    """Approve the mapping when the flow waits for it; the flow's final status."""
    orch, disc = stack.orchestrator(), stack.discovery()

    async def settled() -> int:
        flow = (
            await orch.GetFlow(orchestrator_pb2.GetFlowRequest(name=name), metadata=md(tenant))
        ).flow
        if flow.status == flow_pb2.FLOW_STATUS_WAITING_FOR_APPROVAL:
            listed = await disc.ListFieldMappings(
                discovery_pb2.ListFieldMappingsRequest(master_flow=name), metadata=md(tenant)
            )
            if not listed.approved:
                await approve_waiving_gaps(stack, tenant, name, listed)
            # The approval moves the flow on by itself; a resume after it, even one sent
            # before its event arrives, is a no-op success on any replica.
            await orch.ResumeFlow(
                orchestrator_pb2.ResumeFlowRequest(name=name), metadata=md(tenant)
            )
            return 0
        done = flow.status in (flow_pb2.FLOW_STATUS_COMPLETED, flow_pb2.FLOW_STATUS_FAILED)
        return int(flow.status) if done else 0

    return await eventually(settled, timeout=120, interval=0.2)


async def test_two_replicas_of_each_with_mtls_complete_flows(
    database_url: str, tmp_path: Path
) -> None:
    orchestrators = [(free_port(), free_port()) for _ in range(2)]
    discoveries = [(free_port(), free_port()) for _ in range(2)]

    def targets(ports: list[tuple[int, int]]) -> str:
        # One target naming every replica: the relay's round_robin spreads over them.
        return "ipv4:" + ",".join(f"127.0.0.1:{internal}" for _, internal in ports)

    base = Stack(database_url).env()
    procs: list[Process] = []
    try:
        for i, (public, internal) in enumerate(orchestrators):
            env = {
                **base,
                "FLOWPAIR_ORCHESTRATOR_LISTEN": f"127.0.0.1:{public}",
                "FLOWPAIR_ORCHESTRATOR_INTERNAL_LISTEN": f"127.0.0.1:{internal}",
                "FLOWPAIR_DISCOVERY_INTERNAL_TARGET": targets(discoveries),
            }
            procs.append(Process("orchestrator_svc", env, tmp_path / f"orchestrator{i}.log"))
        for i, (public, internal) in enumerate(discoveries):
            env = {
                **base,
                "FLOWPAIR_DISCOVERY_LISTEN": f"127.0.0.1:{public}",
                "FLOWPAIR_DISCOVERY_INTERNAL_LISTEN": f"127.0.0.1:{internal}",
                "FLOWPAIR_ORCHESTRATOR_INTERNAL_TARGET": targets(orchestrators),
            }
            procs.append(Process("discovery_svc", env, tmp_path / f"discovery{i}.log"))
        for proc, (public, _) in zip(procs, [*orchestrators, *discoveries], strict=True):
            await proc.wait_serving(public)

        # Client i talks to orchestrator i % 2 and discovery (i + 1) % 2.
        clients = [
            Stack(
                database_url,
                orchestrator_port=orchestrators[i % 2][0],
                discovery_port=discoveries[(i + 1) % 2][0],
            )
            for i in range(FLOWS)
        ]

        async def one(client: Stack) -> int:
            tenant = new_tenant()
            uploaded = await client.upload(tenant, EXAMPLE.read_bytes())
            flow = orchestrator_pb2.Flow(type=flow_pb2.FLOW_TYPE_DISCOVERY, auto_approve=True)
            flow.data_import = uploaded.name
            created = await client.orchestrator().CreateFlow(
                orchestrator_pb2.CreateFlowRequest(flow=flow, request_id=str(uuid.uuid4())),
                metadata=md(tenant),
            )
            return await _drive(client, tenant, created.flow.name)

        try:
            finals = await asyncio.gather(*(one(c) for c in clients))
        finally:
            for c in clients:
                await c.close()
        assert finals == [flow_pb2.FLOW_STATUS_COMPLETED] * FLOWS
        for proc in procs:
            assert proc.terminate() == 0
        logs = {p.log_path.name: p.log_path.read_text() for p in procs}
        for log_name, text in logs.items():
            served = (
                "/flowpair.internal.v1.FlowEventService/"
                if log_name.startswith("orchestrator")
                else "/flowpair.internal.v1.ChildFlowService/"
            )
            assert served in text, f"{log_name} served no internal call"
            assert "PERMISSION_DENIED" not in text and "UNAVAILABLE" not in text, log_name
    finally:
        for proc in procs:
            proc.close()
