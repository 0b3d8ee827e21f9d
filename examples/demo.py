"""`make demo`: a discovery flow's whole journey on examples/cmdb_export.csv, as a client.

Starts both services on free ports (on the embedded PostgreSQL unless DATABASE_URL is set),
then, through the public RPCs only: upload the CSV, create a flow, watch it, show the
suggested mappings, approve them (which moves the flow on by itself), watch it to COMPLETED
and print an inventory summary and the findings (what each data phase did, the first
issues). Exits non-zero if the flow does not complete.

    python examples/demo.py [--csv FILE] [--orchestrator HOST:PORT --discovery HOST:PORT]
                            [--token-file FILE]

With both addresses given it uses services already running (`make run`) instead. The bearer
token is read from --token-file (default: the development token `make run` writes,
.data/dev-token); it must be allowed to act for any client account (each run uses a fresh one).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from flowpair.v1 import (
    discovery_pb2,
    discovery_pb2_grpc,
    flow_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
)
from flowpair_shared import devstack
from flowpair_shared.convert import enum_word
from flowpair_shared.db import app_role_url

if TYPE_CHECKING:
    from flowpair.v1.discovery_pb2_grpc import DiscoveryServiceAsyncStub
    from flowpair.v1.orchestrator_pb2_grpc import OrchestratorServiceAsyncStub

WAITING: int = flow_pb2.FLOW_STATUS_WAITING_FOR_APPROVAL
SAMPLE = Path(__file__).resolve().parent / "cmdb_export.csv"
TERMINAL: set[int] = {
    flow_pb2.FLOW_STATUS_COMPLETED,
    flow_pb2.FLOW_STATUS_FAILED,
    flow_pb2.FLOW_STATUS_CANCELLED,
}


def say(text: str = "") -> None:
    print(text, flush=True)


class Client:
    """The two stubs and one tenant (a fresh engagement, so every run starts clean)."""

    def __init__(self, orchestrator: str, discovery: str, token: str) -> None:
        self.channels = [
            grpc.aio.insecure_channel(orchestrator),
            grpc.aio.insecure_channel(discovery),
        ]
        self.orch: OrchestratorServiceAsyncStub = orchestrator_pb2_grpc.OrchestratorServiceStub(
            self.channels[0]
        )
        self.disc: DiscoveryServiceAsyncStub = discovery_pb2_grpc.DiscoveryServiceStub(
            self.channels[1]
        )
        self.metadata = (
            ("x-client-account-id", str(uuid.uuid4())),
            ("x-engagement-id", str(uuid.uuid4())),
            ("authorization", f"Bearer {token}"),
        )

    async def close(self) -> None:
        for ch in self.channels:
            await ch.close()


async def upload(client: Client, path: Path) -> discovery_pb2.Import:
    def chunks() -> Iterator[bytes]:
        with path.open("rb") as f:
            while chunk := f.read(256 * 1024):
                yield chunk

    async def requests() -> AsyncIterator[discovery_pb2.UploadImportDataRequest]:
        yield discovery_pb2.UploadImportDataRequest(
            metadata=discovery_pb2.ImportMetadata(file_name=path.name)
        )
        for chunk in chunks():
            yield discovery_pb2.UploadImportDataRequest(chunk=chunk)

    response = await client.disc.UploadImportData(requests(), metadata=client.metadata)
    result: discovery_pb2.Import = response.data_import
    return result


async def watch(client: Client, name: str, after: int, until: set[int]) -> tuple[int, int]:
    """Print the flow's events after ``after`` until its status is in ``until``."""
    stream = client.orch.WatchFlow(
        orchestrator_pb2.WatchFlowRequest(name=name, after_sequence=after),
        metadata=client.metadata,
    )
    async for update in stream:
        e = update.event
        what = enum_word(flow_pb2.FlowEventKind, e.kind, "FLOW_EVENT_KIND_")
        if e.phase:
            what += " " + enum_word(flow_pb2.Phase, e.phase, "PHASE_")
        if e.phase_status:
            what += " → " + enum_word(flow_pb2.PhaseStatus, e.phase_status, "PHASE_STATUS_")
        status = enum_word(flow_pb2.FlowStatus, e.flow_status, "FLOW_STATUS_")
        error = f"  ({e.error.reason}: {e.error.message})" if e.HasField("error") else ""
        say(f"  #{e.sequence:<3} {what:<50} flow {status}{error}")
        if e.flow_status in until:
            stream.cancel()
            return e.sequence, e.flow_status
    raise RuntimeError("WatchFlow ended early")


async def pages(call: Any, request: Any, field: str, metadata: Any) -> list[Any]:
    items: list[Any] = []
    while True:
        page = await call(request, metadata=metadata)
        items.extend(getattr(page, field))
        if not page.next_page_token:
            return items
        request.page_token = page.next_page_token


async def journey(client: Client, csv_path: Path) -> bool:
    say(f"1. Upload {csv_path.name}")
    imported = await upload(client, csv_path)
    say(
        f"   {imported.name}: {imported.row_count} rows, {len(imported.columns)} columns,"
        f" {imported.quarantined_row_count} quarantined"
    )
    for q in imported.quarantined_rows[:5]:
        say(f"   quarantined line {q.line_number}: {q.reason}")

    say("2. CreateFlow (discovery, on that import)")
    flow = orchestrator_pb2.Flow(type=flow_pb2.FLOW_TYPE_DISCOVERY, display_name=csv_path.stem)
    flow.data_import = imported.name
    created = await client.orch.CreateFlow(
        orchestrator_pb2.CreateFlowRequest(flow=flow, request_id=str(uuid.uuid4())),
        metadata=client.metadata,
    )
    name = created.flow.name
    say(f"   {name}")

    say("3. WatchFlow")
    seen, status = await watch(client, name, 0, TERMINAL | {WAITING})
    if status == WAITING:
        say("4. Suggested mappings (ListFieldMappings)")
        listed = await client.disc.ListFieldMappings(
            discovery_pb2.ListFieldMappingsRequest(master_flow=name), metadata=client.metadata
        )
        for m in listed.mappings:
            state = enum_word(discovery_pb2.MappingState, m.state, "MAPPING_STATE_")
            target = m.target_attribute or "—"
            line = f"{m.source_column:<14} → {target:<21} {m.confidence:4.2f} {state:<10}"
            say(f"   {line} {m.reason}")
        missing = list(listed.missing_required_attributes)
        say(f"   missing required attributes: {', '.join(missing) or 'none'}")
        say("   Approve (UpdateFieldMappings approve=true, with the etag): the flow moves on")
        approved = await client.disc.UpdateFieldMappings(
            discovery_pb2.UpdateFieldMappingsRequest(
                master_flow=name,
                etag=listed.etag,
                approve=True,
                waive_required_attributes=missing,
            ),
            metadata=client.metadata,
        )
        say(f"   approved: {approved.approved}, etag {approved.etag}")
        # No ResumeFlow: the approval alone continues the flow (a ResumeFlow now would be a
        # harmless no-op).
        say("5. WatchFlow (approved)")
        seen, status = await watch(client, name, seen, TERMINAL)
    if status != flow_pb2.FLOW_STATUS_COMPLETED:
        say(f"the flow ended {enum_word(flow_pb2.FlowStatus, status, 'FLOW_STATUS_')}")
        return False
    await summary(client)
    await findings(client, name)
    return True


async def summary(client: Client) -> None:
    assets = await pages(
        client.disc.ListAssets,
        discovery_pb2.ListAssetsRequest(page_size=200),
        "assets",
        client.metadata,
    )
    deps = await pages(
        client.disc.ListDependencies,
        discovery_pb2.ListDependenciesRequest(page_size=200),
        "dependencies",
        client.metadata,
    )
    say("6. Inventory (ListAssets, ListDependencies)")
    say(f"   {len(assets)} assets, {len(deps)} dependencies")
    for title, counter in (
        (
            "by type",
            Counter(
                enum_word(
                    discovery_pb2.AssetType, a.asset_type, "ASSET_TYPE_", lower=True, unset=""
                )
                for a in assets
            ),
        ),
        (
            "by environment",
            Counter(
                enum_word(
                    discovery_pb2.Environment,
                    a.environment,
                    "ENVIRONMENT_",
                    lower=True,
                    unset="(none)",
                )
                for a in assets
            ),
        ),
        (
            "hosts by OS family",
            Counter(
                enum_word(
                    discovery_pb2.OsFamily, a.os_family, "OS_FAMILY_", lower=True, unset="(unknown)"
                )
                for a in assets
                if a.asset_type != discovery_pb2.ASSET_TYPE_APPLICATION
            ),
        ),
        ("dependencies by kind", Counter(kind(d) for d in deps)),
    ):
        say(f"   {title}: " + ", ".join(f"{k} {n}" for k, n in counter.most_common()))
    memory = sum(a.memory_gb for a in assets)
    cores = sum(a.cpu_cores for a in assets)
    say(f"   capacity: {cores} vCPU, {memory:,.0f} GB memory")
    for d in deps[:5]:
        say(f"   e.g. {d.source_display_name} —{kind(d)}→ {d.target_display_name}")


def kind(d: discovery_pb2.Dependency) -> str:
    return enum_word(
        discovery_pb2.DependencyKind, d.kind, "DEPENDENCY_KIND_", lower=True, unset="?"
    )


def issue_counts(counts: Any) -> str:
    """``INVALID_VALUE 12 (10 rows), IDENTITY 3 (3 rows)``, or ``none``."""
    return (
        ", ".join(
            f"{enum_word(discovery_pb2.DataIssueKind, c.kind, 'DATA_ISSUE_KIND_')} {c.count}"
            f" ({c.row_count} rows)"
            for c in counts
        )
        or "none"
    )


async def findings(client: Client, name: str) -> None:
    """What each data phase did with the rows, and the first issues to look at."""
    say("7. Findings (GetChildFlow phase summaries, ListDataIssues)")
    child = await client.disc.GetChildFlow(
        discovery_pb2.GetChildFlowRequest(master_flow=name), metadata=client.metadata
    )
    for p in child.child_flow.phase_summaries:
        line = f"rows {p.rows_in} in, {p.rows_out} out"
        if p.phase == flow_pb2.PHASE_ASSET_INVENTORY:
            line += (
                f"; assets {p.assets_created} created, {p.assets_updated} updated,"
                f" {p.assets_merged} merged"
            )
        if p.phase == flow_pb2.PHASE_DEPENDENCY_ANALYSIS:
            line += f"; {p.dependencies} dependencies"
        phase = enum_word(flow_pb2.Phase, p.phase, "PHASE_")
        say(f"   {phase}: {line}; issues: {issue_counts(p.issue_counts)}")
    issues = await client.disc.ListDataIssues(
        discovery_pb2.ListDataIssuesRequest(master_flow=name, page_size=5),
        metadata=client.metadata,
    )
    shown = len(issues.data_issues)
    more = f"; the first {shown}" if shown < issues.total_size else ""
    say(f"   {issues.total_size} issues{more}" + (":" if shown else ""))
    for i in issues.data_issues:
        kind = enum_word(discovery_pb2.DataIssueKind, i.kind, "DATA_ISSUE_KIND_")
        severity = enum_word(discovery_pb2.FlagSeverity, i.severity, "FLAG_SEVERITY_")
        where = f"row {i.row_number}"
        if i.attribute:
            where += f" {i.attribute} ({', '.join(i.source_columns)})"
        # Most problems quote the value already.
        value = f" {i.value!r}:" if i.value and i.value not in i.problem else ""
        say(f"   - {where} {severity} {kind}:{value} {i.problem}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_serving(target: str, timeout: float = 60.0) -> None:
    async with grpc.aio.insecure_channel(target) as ch:
        stub: Any = health_pb2_grpc.HealthStub(ch)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                r = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if loop.time() > deadline:
                raise RuntimeError(f"{target} did not start serving within {timeout:g} s")
            await asyncio.sleep(0.1)


async def main_async(args: argparse.Namespace, token: str) -> int:
    client = Client(args.orchestrator, args.discovery, token)
    try:
        await wait_serving(args.orchestrator)
        await wait_serving(args.discovery)
        ok = await journey(client, Path(args.csv))
    finally:
        await client.close()
    say("COMPLETED" if ok else "NOT COMPLETED")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=str(SAMPLE), help="the CMDB export to upload")
    parser.add_argument("--orchestrator", help="a running orchestrator (host:port)")
    parser.add_argument("--discovery", help="a running discovery service (host:port)")
    parser.add_argument(
        "--token-file",
        default=str(devstack.DATA_DIR / "dev-token"),
        help="file holding the bearer token (default: the development token)",
    )
    args = parser.parse_args()
    if bool(args.orchestrator) != bool(args.discovery):
        parser.error("give both --orchestrator and --discovery, or neither")
    if args.orchestrator:
        return asyncio.run(main_async(args, Path(args.token_file).read_text().strip()))

    url = devstack.database_url()
    devstack.migrate(url)
    args.orchestrator = f"127.0.0.1:{free_port()}"
    args.discovery = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        **devstack.ensure_dev_credentials(),
        "DATABASE_URL": app_role_url(url, os.environ.get("FLOWPAIR_APP_DB_PASSWORD")),
        "FLOWPAIR_ORCHESTRATOR_LISTEN": args.orchestrator,
        "FLOWPAIR_DISCOVERY_LISTEN": args.discovery,
        "FLOWPAIR_ORCHESTRATOR_INTERNAL_LISTEN": f"127.0.0.1:{free_port()}",
        "FLOWPAIR_DISCOVERY_INTERNAL_LISTEN": f"127.0.0.1:{free_port()}",
        "FLOWPAIR_LOG_LEVEL": os.environ.get("FLOWPAIR_LOG_LEVEL", "WARNING"),
    }
    procs = devstack.start_services(env)
    try:
        return asyncio.run(main_async(args, Path(args.token_file).read_text().strip()))
    finally:
        devstack.stop_services(procs)


if __name__ == "__main__":
    sys.exit(main())
