"""The cleanser's knowledge end to end: a ServiceNow-style export with real class names and
messy hosts ("RAM MB" header, kernel-style OS versions), and the real ServiceNow export."""

from __future__ import annotations

import csv
import io

from discovery_svc.entrypoints.vocabularies import ASSET_TYPE
from flowpair.v1 import discovery_pb2
from tests.support import ROOT, Stack, approve_waiving_gaps, fetch, md, new_tenant
from tests.test_discovery_journey import all_pages, resume_to_completion, until_approval

REAL = ROOT / "examples" / "realdata" / "servicenow_style_cmdb_export.csv"

HEADER = ["Name", "Class", "Hostname (FQDN)", "IP Address", "OS", "OS Version", "RAM MB"]
SOFTWARE = [
    "Microsoft SQL Server 2005 Books Online",
    "PGPadmin",
    "Oracle Database 19c Client",
    "MySQL Workbench 8.0 CE",
    "Microsoft SQL Server Management Studio",
    "PostgreSQL ODBC Driver",
]
HOSTS = [
    # name, class, OS, version column, RAM MB
    ("lnx01", "Linux Server", "Red Hat Enterprise Linux 8 (4.18.0-513.el8_9.x86_64)", "", "32768"),
    ("lnx02", "Linux Server", "Linux Amazon AL2", "", "16384"),
    ("lnx03", "Linux Server", "SUSE Linux Enterprise Server 15", "SP4", "65536"),
    ("win01", "Windows Server", "Windows 2016 Standard", "", "16384"),
    ("win02", "Windows Cluster Node", "Microsoft Windows Server 2019 Datacenter", "", "131072"),
    ("esx01", "ESX Server", "VMware ESXi 7.0.3 build-20328353", "", "524288"),
    ("pc01", "Computer", "Microsoft Windows 10 Enterprise", "", "8192"),
    ("vm01", "Virtual Machine Instance", "Ubuntu 22.04.3 LTS", "", "4096"),
    ("db-prod-01", "Database Instance", "", "", ""),
    ("core-rtr-01", "IP Router", "Cisco IOS 15.2(4)E8", "", ""),
    ("core-sw-01", "IP Switch", "Cisco NX-OS 9.3(8)", "", ""),
    ("edge-fw-01", "Network Gear", "PAN-OS 10.1.6", "", ""),
    ("web01", "Web Server", "", "", ""),
    ("mail01", "Email Server", "", "", ""),
    ("big01", "Linux Server", "RHEL 7.9", "", "999999999"),  # ~954 TB: implausible
    ("odd01", "Gizmo", "", "", ""),
]


def export() -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(HEADER)
    for i, (name, cls, os_name, version, ram) in enumerate(HOSTS):
        w.writerow(
            [name, cls, f"{name}.corp.example.com", f"10.0.0.{i + 1}", os_name, version, ram]
        )
    for name in SOFTWARE:
        w.writerow([name, "Software", "", "", "", "", ""])
    return out.getvalue().encode()


async def run_flow(
    stack: Stack, data: bytes
) -> tuple[list[discovery_pb2.Asset], list[discovery_pb2.FieldMapping]]:
    """Upload, approve the suggested mapping (waiving what it lacks), run to the end; the
    assets and the suggested mapping."""
    tenant = new_tenant()
    name, seen, listed = await until_approval(stack, tenant, data)
    await approve_waiving_gaps(stack, tenant, name, listed)
    await resume_to_completion(stack, tenant, name, seen)
    assets = await all_pages(
        stack.discovery().ListAssets,
        discovery_pb2.ListAssetsRequest(page_size=100),
        "assets",
        tenant,
    )
    # Every type, new kinds included, is a valid filter.
    vms = await stack.discovery().ListAssets(
        discovery_pb2.ListAssetsRequest(asset_type=discovery_pb2.ASSET_TYPE_VIRTUAL_MACHINE),
        metadata=md(tenant),
    )
    typed = [a for a in assets if isinstance(a, discovery_pb2.Asset)]
    expected = [a.name for a in typed if a.asset_type == discovery_pb2.ASSET_TYPE_VIRTUAL_MACHINE]
    assert sorted(a.name for a in vms.assets) == sorted(expected)
    return typed, list(listed.mappings)


async def issues(stack: Stack) -> list[tuple[str, str, str]]:
    rows = await fetch(
        stack.database_url, "SELECT attribute, value, problem FROM discovery.cleansing_issues"
    )
    return [(r["attribute"], r["value"], r["problem"]) for r in rows]


async def test_servicenow_classes_messy_hosts_and_ram_in_mb(stack: Stack) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery()
    assets, mappings = await run_flow(stack, export())
    suggested = {m.source_column: m.target_attribute for m in mappings}
    assert suggested["RAM MB"] == "memory_gb"
    assert suggested["Class"] == "asset_type"

    typed = assets
    by_host = {a.hostname: a for a in typed if a.hostname}
    by_name = {a.display_name: a for a in typed}
    # RAM MB is read in MB; an implausible size is an issue, not stored.
    assert by_host["lnx01"].memory_gb == 32.0
    assert by_host["esx01"].memory_gb == 512.0
    assert by_host["big01"].memory_gb == 0  # unset
    assert all(a.memory_gb <= 16384 for a in typed)
    found = await issues(stack)
    assert [(a, v) for a, v, p in found if p.startswith("implausible")] == [
        ("memory_gb", "999999999")
    ]

    # Class names from the source's own vocabulary; only the unknown one is an issue.
    unrecognised = [v for a, v, p in found if p.startswith("unrecognised asset type")]
    assert unrecognised == ["Gizmo"]
    expected = {
        "lnx01": "server",
        "win02": "server",
        "esx01": "server",
        "pc01": "end_user_computer",
        "vm01": "virtual_machine",
        "db-prod-01": "database",
        "core-rtr-01": "network_device",
        "core-sw-01": "network_device",
        "edge-fw-01": "network_device",
        "web01": "application",
        "mail01": "application",
    }
    assert {h: ASSET_TYPE.text(by_host[h].asset_type) for h in expected} == expected
    # Software packages are software, never databases because of "SQL" or "pg".
    assert {ASSET_TYPE.text(by_name[s].asset_type) for s in SOFTWARE} == {"software"}

    # Operating systems: kernel-style RHEL, Amazon Linux 2, a version column's service pack.
    assert (by_host["lnx01"].operating_system, by_host["lnx01"].os_version) == ("RHEL 8.9", "8.9")
    assert by_host["lnx02"].operating_system == "Amazon Linux 2"
    assert by_host["lnx03"].operating_system == "SUSE 15 SP4"
    assert by_host["core-rtr-01"].os_family == discovery_pb2.OS_FAMILY_NETWORK


async def test_real_servicenow_export_has_no_false_type_issues(stack: Stack) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery()
    assets, _ = await run_flow(stack, REAL.read_bytes())
    typed = assets
    assert len(typed) == 109
    # No type column: a desktop OS makes an end-user computer (the reason says so), anything
    # else with a host name a server. Two hosts in this server export run Windows 7 Enterprise.
    desktops = {a.hostname for a in typed if a.operating_system == "Windows 7"}
    assert desktops == {"aaa00016", "aaa00020"}
    assert {ASSET_TYPE.text(a.asset_type) for a in typed if a.hostname in desktops} == {
        "end_user_computer"
    }
    assert {ASSET_TYPE.text(a.asset_type) for a in typed if a.hostname not in desktops} == {
        "server"
    }
    found = await issues(stack)
    assert not [p for _, _, p in found if "asset type" in p]
    assert not [p for _, _, p in found if "operating system" in p or "Windows version" in p]
    assert not [p for _, _, p in found if p.startswith("implausible")]


async def test_implausible_columns_are_flagged_before_approval(stack: Stack) -> None:
    """ "RAM GB" holding megabytes: the suggested mapping says so before anyone approves."""
    await stack.start_orchestrator()
    await stack.start_discovery()
    rows = "".join(f"h{i},10.0.1.{i},RHEL 8.6,{2 ** (12 + i % 4)},{i % 8 + 1}\n" for i in range(40))
    data = ("Server Name,IP Address,OS,RAM GB,vCPU\n" + rows).encode()
    _, _, listed = await until_approval(stack, new_tenant(), data)
    warnings = {m.source_column: list(m.warnings) for m in listed.mappings}
    assert warnings["RAM GB"][0].startswith("memory_gb: the typical value"), warnings["RAM GB"]
    assert not warnings["vCPU"] and not warnings["OS"]
    assert not listed.approved
