"""Asset identity through public RPCs: each defect of issue 8 as a row of one CSV.

The rules are in discovery_svc/domain/identity.py. Issues are read from the database: the
findings RPC that will publish them is another piece of work.
"""

from __future__ import annotations

import uuid

import grpc
import pytest

from discovery_svc.adapters import repository
from discovery_svc.phases import HANDLERS
from flowpair.v1 import discovery_pb2, flow_pb2, orchestrator_pb2
from flowpair_shared import db_scope
from flowpair_shared.db import app_role_url, create_engine
from flowpair_shared.domain import Phase
from flowpair_shared.tenancy import Tenant
from tests.support import Stack, eventually, fetch, md, new_tenant
from tests.test_discovery_journey import all_pages
from tests.test_phase_engine import flow_state

HEADER = (
    "hostname,asset_name,ip_address,operating_system,cpu_cores,memory_gb,asset_type,"
    "serial_number,owner,location\n"
)
ROWS = [
    "pc-001,,10.0.0.1,Windows 10,4,8,,SN-SHARED,Ann,Berlin",  # 1-3: one serial, three names
    "pc-002,,10.0.0.2,Windows 10,4,8,,SN-SHARED,Bob,Paris",
    "pc-003,,10.0.0.3,Windows 10,4,8,,SN-SHARED,Cy,Rome",
    "lab-01,,10.9.9.9,Windows 10,4,8,,,,",  # 4-5: one IP, two names
    "lab-02,,10.9.9.9,Windows 10,4,8,,,,",
    "AFPE -4365,,999.1.1.1,Windows 10,4,8,,,,",  # 6: a space in the name, an invalid IP
    "Name_unknown,,,Windows 10,4,8,,,,",  # 7-8: placeholders, nothing else to go by
    "Name_unknown,,,Windows 10,4,8,,,,",
    "N/A,,,Windows 10,4,8,,SN-9,,",  # 9: a placeholder, but a serial
    "TBD,,,Windows 10,4,8,,,,",  # 10: a placeholder and nothing else
    "web01.corp.example,,10.1.0.1,RHEL 8.6,2,4,,,,",  # 11-12: one short name, two domains
    "web01.lab.example,,10.2.0.1,RHEL 8.6,2,4,,,,",
    "db01.corp.example,Billing DB,10.0.1.1,RHEL 8.6,4,16,database,SN-DB,Ops,Berlin",  # 13-14
    "db01.corp.example,,10.0.1.1,Windows Server 2019,4,16,,,,",
    "db01,,,,,,,,,",  # 15: no domain, and db01 has one: the same host
    "web01,,,,,,,,,",  # 16: no domain, and web01 has two: its own asset, reported
]
LATER = [  # db01 without a type or a name; new hosts fill the columns for the mapping
    "db01.corp.example,,10.0.1.1,RHEL 9.2,8,32,,,New Owner,",
    "new-01,New One,10.5.0.1,RHEL 9.2,2,4,server,SN-N1,Ann,Rome",
    "new-02,New Two,10.5.0.2,RHEL 9.2,2,4,server,SN-N2,Bob,Rome",
]


async def run_flow(
    stack: Stack,
    tenant: Tenant,
    rows: list[str],
    key: flow_pb2.IdentityKey.ValueType = flow_pb2.IDENTITY_KEY_UNSPECIFIED,
    header: str = HEADER,
) -> uuid.UUID:
    """Upload the rows, run a flow to COMPLETED; its child flow's id."""
    uploaded = await stack.upload(tenant, (header + "\n".join(rows) + "\n").encode())
    flow = orchestrator_pb2.Flow(
        type=flow_pb2.FLOW_TYPE_DISCOVERY,
        auto_approve=True,
        allow_concurrent=True,
        identity_key=key,
    )
    flow.data_import = uploaded.name
    created = await stack.orchestrator().CreateFlow(
        orchestrator_pb2.CreateFlowRequest(flow=flow), metadata=md(tenant)
    )
    settled = {
        flow_pb2.FLOW_STATUS_COMPLETED,
        flow_pb2.FLOW_STATUS_FAILED,
        flow_pb2.FLOW_STATUS_WAITING_FOR_APPROVAL,
    }

    async def done() -> orchestrator_pb2.Flow | None:
        f = await flow_state(stack, tenant, created.flow.name)
        return f if f.status in settled else None

    result = await eventually(done, timeout=90)
    assert result is not None and result.status == flow_pb2.FLOW_STATUS_COMPLETED, result
    rows_ = await fetch(
        stack.database_url,
        "SELECT id FROM discovery.child_flows WHERE master_flow_id = $1",
        uuid.UUID(created.flow.name.split("/")[1]),
    )
    return rows_[0]["id"]  # type: ignore[no-any-return]


async def rerun_inventory(stack: Stack, tenant: Tenant, child_id: uuid.UUID, times: int) -> None:
    """Run the ASSET_INVENTORY handler again, as the phase runner does: in the flow's tenant."""
    engine = create_engine(app_role_url(stack.database_url), pool_size=2)
    try:
        for _ in range(times):
            with db_scope.tenant(tenant):
                async with engine.begin() as conn:
                    child = await repository.get_for_job(conn, child_id, lock=True)
                    assert child is not None
                    await HANDLERS[Phase.ASSET_INVENTORY].run(child, conn)
    finally:
        await engine.dispose()


def strip_times(assets: dict[str, discovery_pb2.Asset]) -> dict[str, discovery_pb2.Asset]:
    out = {}
    for key, asset in assets.items():
        copy = discovery_pb2.Asset()
        copy.CopyFrom(asset)
        copy.ClearField("update_time")
        out[key] = copy
    return out


async def assets_of(stack: Stack, tenant: Tenant) -> dict[str, discovery_pb2.Asset]:
    found = await all_pages(
        stack.discovery().ListAssets,
        discovery_pb2.ListAssetsRequest(page_size=100),
        "assets",
        tenant,
    )
    by_host: dict[str, discovery_pb2.Asset] = {}
    for a in found:
        assert isinstance(a, discovery_pb2.Asset)
        key = ".".join(p for p in (a.hostname, a.domain) if p) or a.display_name
        assert key not in by_host, f"two assets for {key}"
        by_host[key] = a
    return by_host


async def master_of(stack: Stack, child: uuid.UUID) -> str:
    master = await fetch(
        stack.database_url, "SELECT master_flow_id FROM discovery.child_flows WHERE id = $1", child
    )
    return f"flows/{master[0]['master_flow_id']}"


async def issues_of(stack: Stack, child: uuid.UUID) -> dict[int, list[tuple[str, str, str]]]:
    rows = await fetch(
        stack.database_url,
        "SELECT row_number, attribute, value, problem FROM discovery.cleansing_issues"
        " WHERE child_flow_id = $1 ORDER BY row_number, attribute, problem",
        child,
    )
    out: dict[int, list[tuple[str, str, str]]] = {}
    for r in rows:
        out.setdefault(r["row_number"], []).append((r["attribute"], r["value"], r["problem"]))
    return out


async def test_each_identity_defect_and_every_row_accounted_for(stack: Stack) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    child = await run_flow(stack, tenant, ROWS)
    assets = await assets_of(stack, tenant)
    issues = await issues_of(stack, child)

    def said(row: int, attribute: str, words: str) -> bool:
        return any(a == attribute and words in p for a, _, p in issues.get(row, []))

    # A shared serial does not merge different names; each row is told so.
    for row, host, owner in ((1, "pc-001", "Ann"), (2, "pc-002", "Bob"), (3, "pc-003", "Cy")):
        assert assets[host].owner == owner and assets[host].serial_number == "SN-SHARED"
        assert said(row, "serial_number", "2 other asset(s)"), issues.get(row)
    # Nor does a shared IP; and no asset is named by its IP.
    assert assets["lab-01"].ip_address == assets["lab-02"].ip_address == "10.9.9.9"
    assert said(4, "ip_address", "kept apart") and said(5, "ip_address", "kept apart")
    assert not any(a.display_name == "10.9.9.9" for a in assets.values())
    # A name with a space is kept (and reported), even when the IP is invalid too.
    assert assets["afpe -4365"].display_name == "AFPE -4365"
    assert said(6, "hostname", "kept as written")
    # Placeholders never identify: rows 7, 8 and 10 make no asset and say why; row 9 is its
    # serial number's asset; no asset is named by a placeholder.
    assert not any("unknown" in k for k in assets)
    for row in (7, 8, 10):
        assert said(row, "hostname", "makes no asset"), issues.get(row)
    assert said(7, "hostname", "placeholder") and said(8, "hostname", "placeholder")
    assert assets["SN-9"].serial_number == "SN-9" and not assets["SN-9"].hostname
    # Equal short names in different domains stay apart; a bare short name joins the one
    # domain it has, and is its own asset (reported) when it has several.
    assert {"web01.corp.example", "web01.lab.example", "web01"} <= set(assets)
    assert said(16, "hostname", "several domains")
    db = assets["db01.corp.example"]
    assert not said(15, "hostname", "several domains")
    # One host merged by rank: row 13 is the most complete, so its OS, type and name win;
    # row 14's other OS is an issue naming both.
    assert db.operating_system == "RHEL 8.6" and db.asset_type == discovery_pb2.ASSET_TYPE_DATABASE
    assert db.display_name == "Billing DB" and db.owner == "Ops" and db.location == "Berlin"
    assert said(14, "operating_system", '"RHEL 8.6" in row 13')
    got = await stack.discovery().GetAsset(
        discovery_pb2.GetAssetRequest(name=db.name), metadata=md(tenant)
    )
    assert len(got.asset.source_rows) == 3, got.asset.source_rows  # rows 13, 14 and 15
    assert len(assets) == 11, sorted(assets)

    # Every row ends in an asset or in an issue saying why it made none.
    linked = await fetch(
        stack.database_url,
        "SELECT DISTINCT row_number FROM discovery.asset_sources WHERE child_flow_id = $1",
        child,
    )
    unkeyed = {r for r in issues if said(r, "hostname", "makes no asset")}
    assert {r["row_number"] for r in linked} | unkeyed == set(range(1, len(ROWS) + 1))
    assert len(linked) + len(unkeyed) == len(ROWS)
    # The same findings through the public API, each of the inventory's kinds.
    flow_name = await master_of(stack, child)
    disc = stack.discovery()

    async def listed(kind: discovery_pb2.DataIssueKind.ValueType) -> list[discovery_pb2.DataIssue]:
        return list(
            (
                await disc.ListDataIssues(
                    discovery_pb2.ListDataIssuesRequest(
                        master_flow=flow_name, kind=kind, page_size=1000
                    ),
                    metadata=md(tenant),
                )
            ).data_issues
        )

    without = await listed(discovery_pb2.DATA_ISSUE_KIND_ROW_WITHOUT_ASSET)
    assert {i.row_number for i in without} == unkeyed
    noted = await listed(discovery_pb2.DATA_ISSUE_KIND_IDENTITY)
    assert all(i.phase == flow_pb2.PHASE_ASSET_INVENTORY for i in noted)
    assert {i.row_number for i in noted} >= {1, 2, 3, 4, 5, 6, 14, 16}

    # Running ASSET_INVENTORY again changes neither the assets nor the issues.
    await rerun_inventory(stack, tenant, child, times=2)
    assert await issues_of(stack, child) == issues
    assert strip_times(await assets_of(stack, tenant)) == strip_times(assets)

    # A later flow updates the host by the documented precedence.
    later = await run_flow(stack, tenant, LATER)
    after = await assets_of(stack, tenant)
    db2 = after["db01.corp.example"]
    assert db2.name == db.name and len(after) == len(assets) + 2
    assert (
        db2.asset_type == discovery_pb2.ASSET_TYPE_DATABASE and db2.display_name == "Billing DB"
    )  # given, kept
    assert db2.operating_system == "RHEL 9.2" and db2.cpu_cores == 8  # the latest flow's
    assert db2.owner == "New Owner" and db2.location == "Berlin"  # absent: kept
    assert strip_times(after)["pc-001"] == strip_times(assets)["pc-001"]  # not in the later flow
    assert not await issues_of(stack, later)


REUSED = [  # one host name on two machines, told apart by their serial numbers
    "reuse-01,Old One,10.3.0.1,RHEL 7.9,2,4,server,SN-OLD,Ann,Rome",
    "reuse-01,New One,10.3.0.2,RHEL 9.2,4,8,server,SN-NEW,Bob,Rome",
]


async def test_the_identity_key_is_set_per_flow_and_checked(stack: Stack) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    by_name, by_serial = new_tenant(), new_tenant()
    await run_flow(stack, by_name, REUSED)
    assert len(await assets_of_any(stack, by_name)) == 1
    await run_flow(stack, by_serial, REUSED, flow_pb2.IDENTITY_KEY_NAME_AND_SERIAL)
    assert sorted(a.serial_number for a in await assets_of_any(stack, by_serial)) == [
        "SN-NEW",
        "SN-OLD",
    ]

    flow = orchestrator_pb2.Flow(
        type=flow_pb2.FLOW_TYPE_DISCOVERY, identity_key=flow_pb2.IdentityKey.ValueType(99)
    )
    flow.data_import = f"imports/{uuid.uuid4()}"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.orchestrator().CreateFlow(
            orchestrator_pb2.CreateFlowRequest(flow=flow), metadata=md(tenant)
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "flow.identity_key" in (refused.value.details() or "")


async def assets_of_any(stack: Stack, tenant: Tenant) -> list[discovery_pb2.Asset]:
    found = await all_pages(
        stack.discovery().ListAssets,
        discovery_pb2.ListAssetsRequest(page_size=100),
        "assets",
        tenant,
    )
    return [a for a in found if isinstance(a, discovery_pb2.Asset)]


TAGGED = (
    "hostname,asset_name,ip_address,operating_system,cpu_cores,memory_gb,asset_type,asset_tag\n"
)
TAGGED_ROWS = [
    "kiosk-01,Kiosk,10.7.0.1,Windows 10,4,8,desktop,AT-100",  # 1-2: one name, two tags
    "kiosk-01,Kiosk,10.7.0.2,Windows 10,4,8,desktop,AT-200",
    ",,,Windows 10,4,8,desktop, AT-300 ",  # 3: only a tag
    ",,,Windows 10,4,8,desktop,N/A",  # 4: a placeholder tag: nothing to go by
]


async def test_an_asset_tag_column_is_mapped_cleansed_and_identifies(stack: Stack) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery()
    by_tag, by_default = new_tenant(), new_tenant()

    child = await run_flow(stack, by_tag, TAGGED_ROWS, flow_pb2.IDENTITY_KEY_NAME_AND_TAG, TAGGED)
    cleansed = await fetch(
        stack.database_url,
        "SELECT row_number, values->>'asset_tag' AS tag FROM discovery.cleansed_records"
        " WHERE child_flow_id = $1 ORDER BY row_number",
        child,
    )
    assert [(r["row_number"], r["tag"]) for r in cleansed] == [
        (1, "AT-100"),
        (2, "AT-200"),
        (3, "AT-300"),
        (4, None),
    ]
    # NAME_AND_TAG: equal names with different tags stay two assets.
    tagged = await assets_of_any(stack, by_tag)
    assert sorted((a.hostname, a.display_name) for a in tagged) == [
        ("", "AT-300"),
        ("kiosk-01", "Kiosk"),
        ("kiosk-01", "Kiosk"),
    ]
    assert any("no host name" in p for _, _, p in (await issues_of(stack, child))[4])

    # The default key: the name makes one asset, and a row with only a tag is keyed by it.
    await run_flow(stack, by_default, TAGGED_ROWS, header=TAGGED)
    plain = await assets_of(stack, by_default)
    assert sorted(plain) == ["AT-300", "kiosk-01"]


DOMAINED = (
    "hostname,domain,ip_address,operating_system,cpu_cores,memory_gb,asset_type,serial_number\n"
)


@pytest.mark.parametrize("netbios_first", [True, False])
async def test_a_netbios_domain_and_its_dns_domain_are_one_host_in_any_order(
    stack: Stack, netbios_first: bool
) -> None:
    """Lansweeper says WEB01 in CORP; a later vCenter export says web01.corp.example.com."""
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    netbios = [
        "WEB01,CORP,10.0.0.1,Windows Server 2019,4,16,server,SN-1",
        "APP01,BRANCH,10.0.0.2,Windows Server 2019,4,16,server,SN-2",
        "APP01,CORP,10.0.0.3,Windows Server 2019,4,16,server,SN-3",
    ]
    dns = [
        "web01.corp.example.com,,10.0.0.1,Windows Server 2019,8,32,server,SN-1",
        "app01.branch.example.com,,10.0.0.2,Windows Server 2019,4,16,server,SN-2",
        "db01.corp.example.com,,10.0.0.9,RHEL 9.2,4,16,server,SN-9",
    ]
    for rows in (netbios, dns) if netbios_first else (dns, netbios):
        await run_flow(stack, tenant, rows, header=DOMAINED)
    assets = await assets_of_any(stack, tenant)
    by_name = sorted((a.hostname, a.domain) for a in assets)
    # The asset keeps the DNS domain; APP01 of CORP has none and stays its own.
    assert by_name == [
        ("app01", "branch.example.com"),
        ("app01", "corp"),
        ("db01", "corp.example.com"),
        ("web01", "corp.example.com"),
    ], by_name


async def test_dotted_abbreviations_never_name_an_asset(stack: Stack) -> None:
    """'o.A.' (ohne Angabe) and 'N.N.' in the name column of different machines."""
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    rows = [
        "o.A.,,10.0.0.2,RHEL 8.6,2,4,server,",
        "o.A.,,10.0.0.3,Windows Server 2019,2,4,server,",
        "N.N.,,10.0.0.4,RHEL 8.6,2,4,server,",
        "N.N.,,10.0.0.5,RHEL 8.6,2,4,server,",
        *(f"web{i:02},,10.0.1.{i},RHEL 8.6,2,4,server," for i in range(1, 9)),
    ]
    child = await run_flow(stack, tenant, rows, header=DOMAINED)
    assets = await assets_of_any(stack, tenant)
    assert sorted(a.display_name for a in assets) == [
        "10.0.0.2",
        "10.0.0.3",
        "10.0.0.4",
        "10.0.0.5",
        *(f"web{i:02}" for i in range(1, 9)),
    ]
    issues = await issues_of(stack, child)
    for row in (1, 2, 3, 4):
        assert any("placeholder" in p for _, _, p in issues[row]), issues.get(row)
