"""Findings as an API: ListDataIssues and the child flow's per-phase summary, on flows run to
COMPLETED through the public RPCs; and a "CI Name" of host names mapped to both asset_name
and hostname, so auto-approval fires on an export without a separate host name column.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import grpc
import pytest

from flowpair.v1 import discovery_pb2, flow_pb2
from flowpair_shared.tenancy import Tenant
from tests.support import Stack, md, new_tenant
from tests.test_discovery_journey import all_pages, until_approval, watch_until

# Row 3 RAM and row 4 CPU cannot be cleansed; row 5 has nothing that names an asset; row 6
# depends on a host nobody has; rows 7 and 8 describe the same host (merged into one asset).
CI_NAME_CSV = b"""CI Name,Class,IP Address,OS,CPU Cores,RAM (GB),Depends On
web01,Server,10.0.0.1,Red Hat Enterprise Linux 8.6,4,16,db01
web02,Server,10.0.0.2,Red Hat Enterprise Linux 8.6,4,16,db01
db01,Server,10.0.0.3,Red Hat Enterprise Linux 8.6,8,lots,
app01,Server,10.0.0.4,Windows Server 2019,2x4,8,
,Server,,Windows Server 2019,2,8,
app02,Server,10.0.0.6,Windows Server 2019,2,8,ghost99
app03,Server,10.0.0.7,Windows Server 2019,2,8,
app03,Server,10.0.0.7,Windows Server 2019,2,8,
"""
ROWS = 8
KIND = discovery_pb2.DataIssueKind


async def _completed(stack: Stack, tenant: Tenant, data: bytes) -> tuple[str, str]:
    """Upload ``data``, create an auto-approved flow and watch it to COMPLETED."""
    name, uploaded = await stack.start_flow(tenant, data, auto_approve=True)
    done, _ = await asyncio.wait_for(
        watch_until(
            stack,
            tenant,
            name,
            {
                flow_pb2.FLOW_STATUS_COMPLETED,
                flow_pb2.FLOW_STATUS_FAILED,
                flow_pb2.FLOW_STATUS_WAITING_FOR_APPROVAL,
            },
        ),
        60,
    )
    assert done.status == flow_pb2.FLOW_STATUS_COMPLETED, done
    return name, uploaded.name


async def _issues(
    stack: Stack, tenant: Tenant, request: discovery_pb2.ListDataIssuesRequest
) -> list[discovery_pb2.DataIssue]:
    found = await all_pages(stack.discovery().ListDataIssues, request, "data_issues", tenant)
    return [i for i in found if isinstance(i, discovery_pb2.DataIssue)]


async def test_findings_of_a_completed_flow(stack: Stack) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    disc = stack.discovery()
    name, import_name = await _completed(stack, tenant, CI_NAME_CSV)

    # One column, two attributes: suggested as such, so auto-approval could fire.
    mappings = await disc.ListFieldMappings(
        discovery_pb2.ListFieldMappingsRequest(master_flow=name), metadata=md(tenant)
    )
    ci = next(m for m in mappings.mappings if m.source_column == "CI Name")
    assert (ci.target_attribute, list(ci.additional_target_attributes)) == (
        "asset_name",
        ["hostname"],
    )
    assert not mappings.missing_required_attributes
    assets = await all_pages(
        disc.ListAssets, discovery_pb2.ListAssetsRequest(page_size=100), "assets", tenant
    )
    hosts = sorted(a.hostname for a in assets if isinstance(a, discovery_pb2.Asset))
    assert hosts == ["app01", "app02", "app03", "db01", "web01", "web02"]

    # Every issue, two at a time.
    everything = await _issues(
        stack, tenant, discovery_pb2.ListDataIssuesRequest(master_flow=name, page_size=2)
    )
    by_kind = Counter(i.kind for i in everything)
    assert by_kind == {
        KIND.DATA_ISSUE_KIND_INVALID_VALUE: 2,
        KIND.DATA_ISSUE_KIND_ROW_WITHOUT_ASSET: 1,
        KIND.DATA_ISSUE_KIND_UNRESOLVED_DEPENDENCY: 1,
    }, everything
    assert len({i.name for i in everything}) == len(everything)
    for i in everything:
        assert i.name.startswith(f"{name}/dataIssues/")
        assert i.row == f"{import_name}/rows/{i.row_number}"
        assert i.problem
    ram = next(i for i in everything if i.attribute == "memory_gb")
    assert (ram.row_number, ram.value, list(ram.source_columns)) == (3, "lots", ["RAM (GB)"])
    assert ram.severity == discovery_pb2.FLAG_SEVERITY_WARNING
    assert ram.phase == flow_pb2.PHASE_DATA_CLEANSING
    lost = next(i for i in everything if i.kind == KIND.DATA_ISSUE_KIND_ROW_WITHOUT_ASSET)
    assert (lost.row_number, lost.attribute, lost.severity, lost.phase) == (
        5,
        "",
        discovery_pb2.FLAG_SEVERITY_ERROR,
        flow_pb2.PHASE_ASSET_INVENTORY,
    )
    ghost = next(i for i in everything if i.kind == KIND.DATA_ISSUE_KIND_UNRESOLVED_DEPENDENCY)
    assert (ghost.row_number, ghost.value, list(ghost.source_columns)) == (
        6,
        "ghost99",
        ["Depends On"],
    )

    # Filters: kind, severity, source column, row; total_size counts the matches.
    async def only(**filters: object) -> list[discovery_pb2.DataIssue]:
        request = discovery_pb2.ListDataIssuesRequest(master_flow=name, **filters)  # type: ignore[arg-type]
        page = await disc.ListDataIssues(request, metadata=md(tenant))
        found = await _issues(stack, tenant, request)
        assert page.total_size == len(found)
        return found

    assert {i.kind for i in await only(kind=KIND.DATA_ISSUE_KIND_INVALID_VALUE)} == {
        KIND.DATA_ISSUE_KIND_INVALID_VALUE
    }
    assert await only(severity=discovery_pb2.FLAG_SEVERITY_ERROR) == [lost]
    assert await only(severity=discovery_pb2.FLAG_SEVERITY_INFO) == []
    assert await only(source_column="RAM (GB)") == [ram]
    assert await only(source_column="CI Name") == []
    assert await only(row_number=6) == [ghost]
    assert await only(row_number=6, kind=KIND.DATA_ISSUE_KIND_INVALID_VALUE) == []

    # The summary adds up: every row is cleansed, and every cleansed row is in an asset or
    # has an issue saying why not.
    child = (
        await disc.GetChildFlow(
            discovery_pb2.GetChildFlowRequest(master_flow=name), metadata=md(tenant)
        )
    ).child_flow
    summary = {s.phase: s for s in child.phase_summaries}
    assert list(summary) == [
        flow_pb2.PHASE_DATA_CLEANSING,
        flow_pb2.PHASE_ASSET_INVENTORY,
        flow_pb2.PHASE_DEPENDENCY_ANALYSIS,
    ]
    cleansing = summary[flow_pb2.PHASE_DATA_CLEANSING]
    assert (cleansing.rows_in, cleansing.rows_out) == (ROWS, ROWS)
    inventory = summary[flow_pb2.PHASE_ASSET_INVENTORY]
    unexplained = {c.kind: c.row_count for c in inventory.issue_counts}
    assert inventory.rows_in == ROWS
    assert inventory.rows_out + unexplained[KIND.DATA_ISSUE_KIND_ROW_WITHOUT_ASSET] == ROWS
    assert (inventory.assets_created, inventory.assets_updated, inventory.assets_merged) == (
        6,
        0,
        1,
    )
    dependencies = summary[flow_pb2.PHASE_DEPENDENCY_ANALYSIS]
    assert dependencies.dependencies == 2
    counted = Counter({c.kind: c.count for s in child.phase_summaries for c in s.issue_counts})
    assert counted == by_kind


async def test_another_tenants_flow_and_foreign_tokens(stack: Stack) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    disc = stack.discovery()
    name, _ = await _completed(stack, tenant, CI_NAME_CSV)

    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await disc.ListDataIssues(
            discovery_pb2.ListDataIssuesRequest(master_flow=name), metadata=md(new_tenant())
        )
    assert foreign.value.code() == grpc.StatusCode.NOT_FOUND

    first = await disc.ListDataIssues(
        discovery_pb2.ListDataIssuesRequest(master_flow=name, page_size=1), metadata=md(tenant)
    )
    assert first.next_page_token and first.total_size == 4
    for bad in (
        discovery_pb2.ListDataIssuesRequest(
            master_flow=name, page_token=first.next_page_token, row_number=3
        ),
        discovery_pb2.ListDataIssuesRequest(master_flow=name, source_column="No Such Column"),
        discovery_pb2.ListDataIssuesRequest(master_flow=name, kind=99),  # type: ignore[arg-type]
        discovery_pb2.ListDataIssuesRequest(master_flow=name, severity=7),  # type: ignore[arg-type]
        discovery_pb2.ListDataIssuesRequest(master_flow=name, row_number=-1),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await disc.ListDataIssues(bad, metadata=md(tenant))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad


async def test_a_person_adds_targets_to_a_column_at_the_gate(stack: Stack) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    disc = stack.discovery()
    data = b"Name,Class\n" + b"".join(b"Payroll box %d,Server\n" % i for i in range(20))
    name, _, listed = await until_approval(stack, tenant, data)
    update = discovery_pb2.FieldMappingUpdate(
        source_column="Name",
        set_additional_targets=discovery_pb2.AdditionalTargets(target_attributes=["hostname"]),
    )
    changed = await disc.UpdateFieldMappings(
        discovery_pb2.UpdateFieldMappingsRequest(
            master_flow=name, etag=listed.etag, updates=[update]
        ),
        metadata=md(tenant),
    )
    column = next(m for m in changed.mappings if m.source_column == "Name")
    assert list(column.additional_target_attributes) == ["hostname"]
    assert column.state == discovery_pb2.MAPPING_STATE_APPROVED
    assert "hostname" not in changed.missing_required_attributes
    update.set_additional_targets.target_attributes[:] = ["x"] * 33
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await disc.UpdateFieldMappings(
            discovery_pb2.UpdateFieldMappingsRequest(
                master_flow=name, etag=changed.etag, updates=[update]
            ),
            metadata=md(tenant),
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
