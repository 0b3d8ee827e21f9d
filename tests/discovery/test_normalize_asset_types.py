"""Asset types from real source vocabularies, and the last-resort guess from names."""

from __future__ import annotations

import json
import tomllib
from collections import Counter
from importlib import resources

import pytest

from discovery_svc import vocab
from discovery_svc.domain.cleansing import RowCleanser
from discovery_svc.normalize.asset_types import ASSET_TYPES, guess_asset_type, normalize_asset_type
from tests.support import ROOT


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # ServiceNow class display names (sys_class_name as exported).
        ("Computer", "end_user_computer"),
        ("Server", "server"),
        ("Linux Server", "server"),
        ("Windows Server", "server"),
        ("Unix Server", "server"),
        ("AIX Server", "server"),
        ("ESX Server", "server"),
        ("Windows Cluster Node", "server"),
        ("Mainframe", "server"),
        ("Software", "software"),
        ("Web Server", "application"),
        ("Email Server", "application"),
        ("Application", "application"),
        ("Business Service", "application"),
        ("IP Router", "network_device"),
        ("IP Switch", "network_device"),
        ("IP Firewall", "network_device"),
        ("Network Gear", "network_device"),
        ("Load Balancer", "network_device"),
        ("Storage Device", "storage"),
        ("Storage Server", "storage"),
        ("NAS File System", "storage"),
        ("Printer", "other"),
        ("Database Instance", "database"),
        ("MSSQL Instance", "database"),
        ("Oracle Instance", "database"),
        ("Virtual Machine Instance", "virtual_machine"),
        ("VMware Virtual Machine Instance", "virtual_machine"),
        # ServiceNow table names, listed or not.
        ("cmdb_ci_computer", "end_user_computer"),
        ("cmdb_ci_win_cluster_node", "server"),
        ("cmdb_ci_spkg", "software"),
        ("cmdb_ci_ip_switch", "network_device"),
        ("cmdb_ci_vmware_instance", "virtual_machine"),
        ("cmdb_ci_netgear", "network_device"),
        ("cmdb_ci_web_server", "application"),
        ("CMDB_CI_LINUX_SERVER", "server"),
        ("cmdb_ci_storage_device", "storage"),
        ("cmdb_ci_db_ora_instance", "database"),
        ("cmdb_ci_printer", "other"),
        ("cmdb_ci_load_balancer", "network_device"),
        # Device42, Lansweeper, SCCM/MECM, vCenter/RVTools.
        ("Physical", "server"),
        ("Virtual", "virtual_machine"),
        ("Workstation", "end_user_computer"),
        ("Laptop", "end_user_computer"),
        ("Desktop", "end_user_computer"),
        ("VM", "virtual_machine"),
        ("vInfo", "virtual_machine"),
        ("HostSystem", "server"),
        ("ESXi Host", "server"),
        ("Hyper-V Host", "server"),
        ("Switch", "network_device"),
        ("Wireless Access Point", "network_device"),
        ("Tape Library", "storage"),
        ("SAN", "storage"),
        ("Datastore", "storage"),
        ("Thin Client", "end_user_computer"),
        ("Installed Software", "software"),
        ("Add/Remove Programs", "software"),
        ("EC2 Instance", "virtual_machine"),
    ],
)
def test_class_names(raw: str, expected: str) -> None:
    assert normalize_asset_type(raw) == (expected, None)


@pytest.mark.parametrize("raw", ["Widget", "cmdb_ci_foo", "Server farm", "Banana"])
def test_unknown_class_names_are_issues(raw: str) -> None:
    assert normalize_asset_type(raw) == (None, f'unrecognised asset type "{raw}"')


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"hostname": "db-prod-01"}, "database"),
        ({"hostname": "mssql01"}, "database"),
        ({"hostname": "lon-sql-02"}, "database"),
        ({"hostname": "core-sw-01"}, "network_device"),
        ({"hostname": "edge_fw2"}, "network_device"),
        # Not words of the name: no guess from them.
        ({"hostname": "proddb01"}, "server"),
        ({"hostname": "swallow01"}, "server"),
        ({"hostname": "pgpadmin"}, "server"),
        # Names with spaces are products or applications, never guessed from.
        ({"asset_name": "Microsoft SQL Server 2005 Books Online"}, "other"),
        ({"asset_name": "PGPadmin"}, "other"),
        ({"asset_name": "Oracle Database 19c Client"}, "other"),
        # An OS says it is a host whatever its name.
        ({"hostname": "db01", "os_family": "linux", "operating_system": "RHEL 8"}, "server"),
        ({"application_name": "Payroll", "asset_name": "Payroll UI"}, "application"),
        ({}, "other"),
    ],
)
def test_the_guess_uses_whole_words_of_host_names(values: dict[str, object], expected: str) -> None:
    guessed, reason = guess_asset_type(values)
    assert guessed == expected
    assert reason


def test_a_given_type_is_not_replaced_by_a_guess() -> None:
    cleanser = RowCleanser({0: "asset_name", 1: "asset_type"})
    row = cleanser.cleanse(["Microsoft SQL Server 2005 Books Online", "Software"])
    assert row.values["asset_type"] == "software" and "asset_type_guess" not in row.values
    guessed = cleanser.cleanse(["PGPadmin", ""])
    assert "asset_type" not in guessed.values
    assert guessed.values["asset_type_guess"] == "other"
    assert guessed.values["asset_type_reason"]


def test_vocabulary_is_consistent_and_shipped() -> None:
    data = vocab.load("asset_types")
    assert set(data["classes"]) == set(ASSET_TYPES) == set(data["precedence"])
    spellings = Counter(s.lower() for names in data["classes"].values() for s in names)
    assert not [s for s, n in spellings.items() if n > 1]
    # Every vocabulary is a JSON file the wheel ships (pyproject's package-data).
    files = [f.name for f in resources.files("discovery_svc.vocab").iterdir()]
    jsons = [f for f in files if f.endswith(".json")]
    assert {"asset_types.json", "operating_systems.json", "units.json"} <= set(jsons)
    for name in jsons:
        json.loads(resources.files("discovery_svc.vocab").joinpath(name).read_text("utf-8"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    assert project["tool"]["setuptools"]["package-data"]["discovery_svc.vocab"] == ["*.json"]
