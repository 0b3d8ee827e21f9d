"""The whole discovery journey, upload to inventory, through the public RPCs as a client would.

Upload the sample CMDB export, create the flow, watch it to the approval gate, review and
approve the suggested mapping, resume, watch it to COMPLETED, then read the inventory. The
expected inventory is worked out here from the CSV with plain Python, independently of the
service's SQL.
"""

from __future__ import annotations

import asyncio
import csv
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import grpc
import pytest

from discovery_svc.entrypoints.vocabularies import (
    ASSET_TYPE,
    DEPENDENCY_KIND,
    ENVIRONMENT,
)
from flowpair.v1 import discovery_pb2, flow_pb2, orchestrator_pb2
from flowpair_shared.tenancy import Tenant
from tests.support import ROOT, Stack, fetch, md, new_tenant

SAMPLE = ROOT / "examples" / "cmdb_export.csv"
REQUIRED_COLUMNS = {
    "asset_name": "CI Name",
    "asset_type": "CI Class",
    "hostname": "Server Name",
    "ip_address": "IP Addr",
    "operating_system": "O/S",
    "cpu_cores": "vCPU",
    "memory_gb": "RAM",
}
TYPES = {
    "Database": "database",
    "Switch": "network_device",
    "Load Balancer": "network_device",
    "Firewall": "network_device",
    "Virtual Machine": "virtual_machine",
}


def expected_inventory(path: Path) -> tuple[dict[str, set[str]], set[str]]:
    """Short host name → the asset types its rows name; the distinct application names."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    hosts: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        host = row["Server Name"].strip().lower().split(".")[0]
        hosts[host].add(TYPES.get(row["CI Class"], "server"))
    apps = {row["App"].strip().lower() for row in rows if row["App"].strip()}
    return hosts, apps


async def watch_until(
    stack: Stack, tenant: Tenant, name: str, statuses: set[int], after: int = 0
) -> tuple[orchestrator_pb2.Flow, int]:
    """Read WatchFlow from ``after`` until the flow reaches one of ``statuses``; the flow
    then (read with GetFlow) and the last sequence seen."""
    stream = stack.orchestrator().WatchFlow(
        orchestrator_pb2.WatchFlowRequest(name=name, after_sequence=after), metadata=md(tenant)
    )
    async for update in stream:
        if update.event.flow_status in statuses:
            stream.cancel()
            got = await stack.orchestrator().GetFlow(
                orchestrator_pb2.GetFlowRequest(name=name), metadata=md(tenant)
            )
            return got.flow, update.event.sequence
    raise AssertionError(f"WatchFlow ended before {statuses}")


async def until_approval(
    stack: Stack, tenant: Tenant, data: bytes
) -> tuple[str, int, discovery_pb2.ListFieldMappingsResponse]:
    """Upload ``data`` and start a flow on it; its name, the last event seen and its suggested
    mapping once it waits for approval."""
    name, _ = await stack.start_flow(tenant, data)
    _, seen = await asyncio.wait_for(
        watch_until(stack, tenant, name, {flow_pb2.FLOW_STATUS_WAITING_FOR_APPROVAL}), 60
    )
    listed = await stack.discovery().ListFieldMappings(
        discovery_pb2.ListFieldMappingsRequest(master_flow=name), metadata=md(tenant)
    )
    return name, seen, listed


async def resume_to_completion(stack: Stack, tenant: Tenant, name: str, seen: int) -> None:
    """Resume an approved flow and wait until it has completed."""
    await stack.orchestrator().ResumeFlow(
        orchestrator_pb2.ResumeFlowRequest(name=name), metadata=md(tenant)
    )
    done, _ = await asyncio.wait_for(
        watch_until(
            stack, tenant, name, {flow_pb2.FLOW_STATUS_COMPLETED, flow_pb2.FLOW_STATUS_FAILED}, seen
        ),
        120,
    )
    assert done.status == flow_pb2.FLOW_STATUS_COMPLETED, done


async def all_pages(call: object, request: object, field: str, tenant: Tenant) -> list[object]:
    items: list[object] = []
    token = ""
    while True:
        request.page_token = token  # type: ignore[attr-defined]
        page = await call(request, metadata=md(tenant))  # type: ignore[operator]
        items.extend(getattr(page, field))
        token = page.next_page_token
        if not token:
            return items


async def test_the_whole_journey_through_public_rpcs(stack: Stack) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    orch = stack.orchestrator()
    disc = stack.discovery()

    uploaded = await stack.upload(tenant, SAMPLE.read_bytes())
    assert uploaded.row_count == 226 and not uploaded.quarantined_rows
    flow = orchestrator_pb2.Flow(type=flow_pb2.FLOW_TYPE_DISCOVERY, display_name="sample")
    flow.data_import = uploaded.name
    created = await orch.CreateFlow(
        orchestrator_pb2.CreateFlowRequest(flow=flow, request_id=str(uuid.uuid4())),
        metadata=md(tenant),
    )
    name = created.flow.name

    waiting, seen = await asyncio.wait_for(
        watch_until(stack, tenant, name, {flow_pb2.FLOW_STATUS_WAITING_FOR_APPROVAL}), 60
    )
    assert waiting.current_phase == flow_pb2.PHASE_ATTRIBUTE_MAPPING

    profile = (
        await disc.GetDataProfile(
            discovery_pb2.GetDataProfileRequest(master_flow=name), metadata=md(tenant)
        )
    ).profile
    by_column = {c.name: c for c in profile.columns}
    assert by_column["IP Addr"].inferred_type == discovery_pb2.VALUE_KIND_IPV4

    listed = await disc.ListFieldMappings(
        discovery_pb2.ListFieldMappingsRequest(master_flow=name), metadata=md(tenant)
    )
    suggested = {
        m.target_attribute: m.source_column
        for m in listed.mappings
        if m.state == discovery_pb2.MAPPING_STATE_SUGGESTED
    }
    for attribute, column in REQUIRED_COLUMNS.items():
        assert suggested.get(attribute) == column, (attribute, listed.mappings)
    assert not listed.missing_required_attributes and not listed.approved
    assert all(m.reason for m in listed.mappings)

    # The gate holds: no resume before approval.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await orch.ResumeFlow(orchestrator_pb2.ResumeFlowRequest(name=name), metadata=md(tenant))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    # Approving without a required attribute lists what is missing, and changes nothing.
    with pytest.raises(grpc.aio.AioRpcError) as incomplete:
        await disc.UpdateFieldMappings(
            discovery_pb2.UpdateFieldMappingsRequest(
                master_flow=name,
                etag=listed.etag,
                updates=[discovery_pb2.FieldMappingUpdate(source_column="IP Addr", reject=True)],
                approve=True,
            ),
            metadata=md(tenant),
        )
    assert incomplete.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "ip_address" in (incomplete.value.details() or "")

    # A person marks one column custom; then a stale etag is refused.
    edited = await disc.UpdateFieldMappings(
        discovery_pb2.UpdateFieldMappingsRequest(
            master_flow=name,
            etag=listed.etag,
            updates=[
                discovery_pb2.FieldMappingUpdate(
                    source_column="Owner", custom_attribute="owner_team"
                )
            ],
        ),
        metadata=md(tenant),
    )
    assert edited.etag != listed.etag and not edited.approved
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await disc.UpdateFieldMappings(
            discovery_pb2.UpdateFieldMappingsRequest(
                master_flow=name, etag=listed.etag, approve=True
            ),
            metadata=md(tenant),
        )
    assert stale.value.code() == grpc.StatusCode.ABORTED
    # Without an etag an edit could overwrite a change it never saw; one that is no etag of
    # ours is the client's mistake, not a concurrent change.
    for etag in ("", "W/1", '"2"', 'W/"0"', 'W/"2"\n'):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await disc.UpdateFieldMappings(
                discovery_pb2.UpdateFieldMappingsRequest(master_flow=name, etag=etag, approve=True),
                metadata=md(tenant),
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, etag
        assert "etag" in (refused.value.details() or ""), etag

    approved = await disc.UpdateFieldMappings(
        discovery_pb2.UpdateFieldMappingsRequest(master_flow=name, etag=edited.etag, approve=True),
        metadata=md(tenant),
    )
    assert approved.approved
    # What nobody changed was accepted with the set, and reads so, here and when listed.
    relisted = await disc.ListFieldMappings(
        discovery_pb2.ListFieldMappingsRequest(master_flow=name), metadata=md(tenant)
    )
    usable = (discovery_pb2.MAPPING_STATE_SUGGESTED, discovery_pb2.MAPPING_STATE_APPROVED)
    accepted = sum(m.state in usable for m in edited.mappings)
    for answer in (approved, relisted):
        states = Counter(m.state for m in answer.mappings)
        assert discovery_pb2.MAPPING_STATE_SUGGESTED not in states, states
        assert states[discovery_pb2.MAPPING_STATE_APPROVED] == accepted, states
    # A set approved before approval marked them reads the same (its rows as then written).
    await fetch(
        stack.database_url,
        "UPDATE discovery.field_mappings SET state = 'suggested' WHERE state = 'approved'",
    )
    older = await disc.ListFieldMappings(
        discovery_pb2.ListFieldMappingsRequest(master_flow=name), metadata=md(tenant)
    )
    assert [m.state for m in older.mappings] == [m.state for m in relisted.mappings]
    await orch.ResumeFlow(
        orchestrator_pb2.ResumeFlowRequest(name=name, reason="mapping reviewed"),
        metadata=md(tenant),
    )
    done, _ = await asyncio.wait_for(
        watch_until(
            stack,
            tenant,
            name,
            {flow_pb2.FLOW_STATUS_COMPLETED, flow_pb2.FLOW_STATUS_FAILED},
            after=seen,
        ),
        120,
    )
    assert done.status == flow_pb2.FLOW_STATUS_COMPLETED, done
    assert all(p.status == flow_pb2.PHASE_STATUS_COMPLETED for p in done.phases)

    hosts, apps = expected_inventory(SAMPLE)
    assets = await all_pages(
        disc.ListAssets, discovery_pb2.ListAssetsRequest(page_size=37), "assets", tenant
    )
    typed = [a for a in assets if isinstance(a, discovery_pb2.Asset)]
    assert len(typed) == len(hosts) + len(apps)
    by_host = {a.hostname: a for a in typed if a.asset_type != discovery_pb2.ASSET_TYPE_APPLICATION}
    assert set(by_host) == set(hosts)
    for host, types in hosts.items():
        if len(types) == 1:
            assert ASSET_TYPE.text(by_host[host].asset_type) in types, (host, by_host[host])
    applications = [a for a in typed if a.asset_type == discovery_pb2.ASSET_TYPE_APPLICATION]
    assert {a.application_name.lower() for a in applications} == apps
    assert all(
        ENVIRONMENT.text(a.environment)
        in ("", "production", "test", "development", "staging", "dr")
        for a in typed
    ), Counter(ENVIRONMENT.text(a.environment) for a in typed)
    assert all(a.memory_gb >= 0 for a in typed)

    databases = await all_pages(
        disc.ListAssets,
        discovery_pb2.ListAssetsRequest(
            asset_type=discovery_pb2.ASSET_TYPE_DATABASE,
            environment=discovery_pb2.ENVIRONMENT_PRODUCTION,
        ),
        "assets",
        tenant,
    )
    assert databases and all(
        isinstance(a, discovery_pb2.Asset)
        and a.asset_type == discovery_pb2.ASSET_TYPE_DATABASE
        and a.environment == discovery_pb2.ENVIRONMENT_PRODUCTION
        for a in databases
    )
    one = by_host["invwebt01"]
    got = (
        await disc.GetAsset(discovery_pb2.GetAssetRequest(name=one.name), metadata=md(tenant))
    ).asset
    assert got.ip_address == "10.4.10.10" and got.os_family == discovery_pb2.OS_FAMILY_LINUX
    assert got.memory_gb == 128 and got.storage_gb == 1000 and got.domain == "corp.example.com"

    # A host listed twice in the export is one asset that links back to both rows.
    with SAMPLE.open(encoding="utf-8-sig", newline="") as f:
        twice = [
            i + 1
            for i, row in enumerate(csv.DictReader(f))
            if row["Server Name"].strip().lower().split(".")[0] == "webdbt02"
        ]
    assert len(twice) == 2
    merged = (
        await disc.GetAsset(
            discovery_pb2.GetAssetRequest(name=by_host["webdbt02"].name), metadata=md(tenant)
        )
    ).asset
    assert sorted(merged.source_rows) == sorted(f"{uploaded.name}/rows/{n}" for n in twice), (
        merged.source_rows
    )

    deps = await all_pages(
        disc.ListDependencies,
        discovery_pb2.ListDependenciesRequest(page_size=50),
        "dependencies",
        tenant,
    )
    edges = {
        (d.source_display_name.lower(), d.target_display_name.lower(), DEPENDENCY_KIND.text(d.kind))
        for d in deps
        if isinstance(d, discovery_pb2.Dependency)
    }
    assert len(edges) == len(deps)  # no duplicated dependency
    kinds = Counter(kind for _, _, kind in edges)
    assert kinds["runs_on"] and kinds["uses_database"] and kinds["depends_on"]
    assert ("inventory", "inventory web test 01", "runs_on") in edges

    # Another tenant sees none of it.
    stranger = new_tenant()
    nothing = await disc.ListAssets(discovery_pb2.ListAssetsRequest(), metadata=md(stranger))
    assert not nothing.assets
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await disc.GetAsset(discovery_pb2.GetAssetRequest(name=one.name), metadata=md(stranger))
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND


async def test_the_real_export_completes_once_its_gaps_are_waived(stack: Stack) -> None:
    """The ServiceNow export has no IPs, CPU or memory: approval names what is missing, and a
    waiver for exactly those lets the flow finish with one asset per server."""
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    disc = stack.discovery()
    real = ROOT / "examples" / "realdata" / "servicenow_style_cmdb_export.csv"
    name, seen, listed = await until_approval(stack, tenant, real.read_bytes())
    missing = list(listed.missing_required_attributes)
    assert {"ip_address", "cpu_cores", "memory_gb"} <= set(missing)
    assert "hostname" not in missing and "operating_system" not in missing
    # Its one name column is the host name and names the asset too.
    assert "asset_name" not in missing
    serv_name = next(m for m in listed.mappings if m.source_column == "serv_name")
    assert list(serv_name.additional_target_attributes) == ["asset_name"]

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await disc.UpdateFieldMappings(
            discovery_pb2.UpdateFieldMappingsRequest(
                master_flow=name, etag=listed.etag, approve=True
            ),
            metadata=md(tenant),
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert all(a in (refused.value.details() or "") for a in missing)

    approved = await disc.UpdateFieldMappings(
        discovery_pb2.UpdateFieldMappingsRequest(
            master_flow=name, etag=listed.etag, approve=True, waive_required_attributes=missing
        ),
        metadata=md(tenant),
    )
    assert approved.approved and list(approved.waived_required_attributes) == missing
    await resume_to_completion(stack, tenant, name, seen)
    with real.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    servers = {row["serv_name"].strip().lower() for row in rows}
    assets = await all_pages(
        disc.ListAssets, discovery_pb2.ListAssetsRequest(page_size=100), "assets", tenant
    )
    hosts = {a.hostname for a in assets if isinstance(a, discovery_pb2.Asset)}
    assert hosts == servers
    child = (
        await disc.GetChildFlow(
            discovery_pb2.GetChildFlowRequest(master_flow=name), metadata=md(tenant)
        )
    ).child_flow
    inventory = next(s for s in child.phase_summaries if s.phase == flow_pb2.PHASE_ASSET_INVENTORY)
    without = sum(
        c.row_count
        for c in inventory.issue_counts
        if c.kind == discovery_pb2.DATA_ISSUE_KIND_ROW_WITHOUT_ASSET
    )
    assert inventory.rows_out + without == inventory.rows_in == len(rows)
    assert inventory.assets_created == len(assets)
