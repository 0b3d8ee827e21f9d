"""Columns that qualify another row by row, and columns whose values outrank their header.

* a unit column beside a size ("ram" + "ram_size_type"), a cores-per-socket column beside a
  socket count ("cpucount" + "cpucore"), a domain column beside short host names;
* values from a closed vocabulary (environment names) and repeated names (the ESXi host of
  each VM) over what the header suggests; headers whose words run together ("OSname").

Suggestions are checked on CSVs profiled in Python; the cleanser on rows.
"""

from __future__ import annotations

import pytest

from discovery_svc.domain.cleansing import PLACEHOLDER_NAME, RowCleanser
from discovery_svc.domain.mapping import suggest
from discovery_svc.domain.mapping_set import FieldMapping, State
from tests.discovery.profiling import profile_csv


def _suggested(header: str, rows: list[str]) -> dict[str, FieldMapping]:
    text = header + "\n" + "\n".join(rows) + "\n"
    return {m.source_column: m for m in suggest(profile_csv(text))}


# --- units row by row -------------------------------------------------------------------------


def test_a_unit_column_is_suggested_as_the_unit_of_the_size_beside_it() -> None:
    rows = [
        f"srv{i:03},10.0.0.{i + 1},{8192 if i % 2 else 16},{'MB' if i % 2 else 'GB'}"
        for i in range(40)
    ]
    by = _suggested("hostname,ip_address,ram,ram_size_type", rows)
    assert by["ram"].target_attribute == "memory_gb"
    assert (by["ram_size_type"].target_attribute, by["ram_size_type"].state) == (
        "memory_unit",
        State.SUGGESTED,
    )


def test_unit_words_under_a_header_naming_the_quantity_are_its_unit() -> None:
    """No synonym: the values (all size units) and the header's noun decide."""
    rows = [f"srv{i:03},{i % 4 + 1},{'TB' if i % 3 else 'GB'}" for i in range(30)]
    by = _suggested("hostname,Disk Capacity,Disk Measure", rows)
    assert by["Disk Measure"].target_attribute == "storage_unit", by["Disk Measure"]
    assert "size units" in by["Disk Measure"].reason


@pytest.mark.parametrize(
    ("size", "unit", "expected"),
    [
        ("8192", "MB", 8.0),
        ("16", "GB", 16.0),
        ("2", "TB", 2048.0),
        ("16", "", 16.0),  # no unit on the row: the column's unit (GB)
        ("512 MB", "GB", 0.5),  # a unit in the value wins
    ],
)
def test_the_cleanser_reads_each_size_in_its_rows_unit(
    size: str, unit: str, expected: float
) -> None:
    cleanser = RowCleanser({0: "hostname", 1: "memory_gb", 2: "memory_unit"})
    cleansed = cleanser.cleanse(["srv1", size, unit])
    assert cleansed.values["memory_gb"] == expected, cleansed
    assert not cleansed.issues
    assert "memory_unit" not in cleansed.values


def test_an_unknown_unit_on_a_row_is_an_issue_and_no_size_is_stored() -> None:
    cleansed = RowCleanser({0: "hostname", 1: "memory_gb", 2: "memory_unit"}).cleanse(
        ["srv1", "8192", "bananas"]
    )
    assert "memory_gb" not in cleansed.values
    assert [(i.attribute, i.value) for i in cleansed.issues] == [("memory_gb", "8192")]
    assert "bananas" in cleansed.issues[0].problem


def test_a_size_implausible_in_its_rows_unit_is_an_issue() -> None:
    cleansed = RowCleanser({0: "hostname", 1: "memory_gb", 2: "memory_unit"}).cleanse(
        ["srv1", "32768", "TB"]
    )
    assert "memory_gb" not in cleansed.values
    assert "implausible" in cleansed.issues[0].problem


# --- sockets times cores per socket -----------------------------------------------------------


def test_cores_per_socket_multiplies_a_socket_count() -> None:
    rows = [f"srv{i:03},10.0.0.{i + 1},{i % 2 + 1},{(i % 4 + 1) * 2}" for i in range(30)]
    by = _suggested("hostname,ip_address,cpucount,cpucore", rows)
    assert by["cpucount"].target_attribute == "cpu_cores"
    assert by["cpucore"].target_attribute == "cores_per_socket"
    assert "multiplies 'cpucount'" in by["cpucore"].reason
    cleanser = RowCleanser({0: "hostname", 1: "cpu_cores", 2: "cores_per_socket"})
    assert cleanser.cleanse(["srv1", "2", "8"]).values["cpu_cores"] == 16
    assert cleanser.cleanse(["srv1", "2", ""]).values["cpu_cores"] == 2
    bad = cleanser.cleanse(["srv1", "2", "eight"])
    assert bad.values["cpu_cores"] == 2
    assert [i.attribute for i in bad.issues] == ["cores_per_socket"]
    over = cleanser.cleanse(["srv1", "64", "64"])
    assert "cpu_cores" not in over.values
    assert "64 sockets x 64 cores" in over.issues[0].problem


def test_cores_per_socket_beside_a_total_is_left_unmapped() -> None:
    """vSphere's NumCpu already counts every vCPU: multiplying would count them twice."""
    rows = [f"vm{i:03},10.0.0.{i + 1},{(i % 4 + 1) * 2},{i % 2 + 1}" for i in range(30)]
    by = _suggested("hostname,ip_address,CPUs,Cores per Socket", rows)
    assert by["CPUs"].target_attribute == "cpu_cores"
    per = by["Cores per Socket"]
    assert (per.target_attribute, per.state) == (None, State.UNMAPPED), per
    assert "count them twice" in per.reason


def test_cores_per_socket_alone_is_the_core_count() -> None:
    rows = [f"srv{i:03},10.0.0.{i + 1},{i % 4 + 1}" for i in range(30)]
    per = _suggested("hostname,ip_address,cpu_core_count", rows)["cpu_core_count"]
    assert per.target_attribute == "cpu_cores"
    assert "one socket assumed" in per.reason


# --- a domain column --------------------------------------------------------------------------


def test_a_domain_column_places_a_short_host_name() -> None:
    by = _suggested(
        "AssetName,Domain", [f"PC{i:03},{'CORP' if i % 2 else 'BRANCH'}" for i in range(30)]
    )
    assert by["Domain"].target_attribute == "domain"
    cleanser = RowCleanser({0: "hostname", 1: "domain"})
    short = cleanser.cleanse(["LSAPP01", "CORP"]).values
    assert (short["hostname"], short["domain"]) == ("lsapp01", "corp")
    dotted = cleanser.cleanse(["web01", "Corp.Example.com."]).values
    assert (dotted["domain"], dotted["fqdn"]) == ("corp.example.com", "web01.corp.example.com")
    # An FQDN keeps its own domain.
    assert cleanser.cleanse(["web01.lab.example", "CORP"]).values["domain"] == "lab.example"


# --- values over headers ----------------------------------------------------------------------


def test_environment_names_are_an_environment_whatever_the_header_says() -> None:
    envs = ["Production", "QA", "Development"]
    rows = [f"srv{i:03},10.0.0.{i + 1},{envs[i % 3]}" for i in range(30)]
    service = _suggested("hostname,ip_address,Service", rows)["Service"]
    assert service.target_attribute == "environment", service
    assert "environment names" in service.reason


def test_a_name_column_that_repeats_is_not_the_assets_name() -> None:
    """RVTools' Host is the ESXi host each VM runs on: a few values across many rows."""
    rows = [
        f"vm{i:03},esx{i % 4}.vc.example.org,vm{i:03}.apps.example.org,10.0.0.{i + 1}"
        for i in range(40)
    ]
    by = _suggested("VM,Host,DNS Name,Primary IP Address", rows)
    assert by["VM"].target_attribute == "asset_name"
    assert by["DNS Name"].target_attribute == "hostname"
    host = by["Host"]
    assert host.state == State.UNMAPPED, host
    assert "operating_system" not in host.alternatives  # "esx0..." is a host, not ESXi


@pytest.mark.parametrize(
    ("header", "attribute"),
    [
        ("OSname", "operating_system"),
        ("OSversion", "os_version"),
        ("Serialnumber", "serial_number"),
        ("IPAddress", "ip_address"),
    ],
)
def test_headers_whose_words_run_together(header: str, attribute: str) -> None:
    values = {
        "operating_system": "Windows Server 2019",
        "os_version": "1809",
        "serial_number": "CZ{i:06}",
        "ip_address": "10.0.0.{n}",
    }[attribute]
    rows = [f"srv{i:03}," + values.format(i=i, n=i + 1) for i in range(20)]
    assert _suggested(f"hostname,{header}", rows)[header].target_attribute == attribute


# --- placeholder names ------------------------------------------------------------------------


@pytest.mark.parametrize("placeholder", ["unknown", "N/A", "TBD", "-"])
def test_a_placeholder_name_is_kept_aside_for_the_inventory_to_report(placeholder: str) -> None:
    cleansed = RowCleanser({0: "asset_name", 1: "hostname", 2: "serial_number"}).cleanse(
        [placeholder, placeholder, "SN-1"]
    )
    assert "asset_name" not in cleansed.values and "hostname" not in cleansed.values
    assert cleansed.values[PLACEHOLDER_NAME] == placeholder  # once, for two attributes
    assert not cleansed.issues


# --- several addresses, abbreviations, what sits above a header -----------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10.0.0.1, 10.0.0.2", "10.0.0.1"),  # multi-homed: the first
        ("fe80::1c2:3ff:fe4d:5e6f; 10.1.2.3", "10.1.2.3"),  # IPv4 beside its link-local IPv6
        ("10.1.2.3 2001:db8::5", "10.1.2.3"),
        ("fe80::1, 2001:db8::5", "2001:db8::5"),
        ("127.0.0.1|10.9.8.7", "10.9.8.7"),
    ],
)
def test_the_hosts_address_among_several_in_one_cell(raw: str, expected: str) -> None:
    from discovery_svc.normalize.network import normalize_ip

    assert normalize_ip(raw) == (expected, None)


@pytest.mark.parametrize("raw", ["x.y.", "u.s.w", "z.B."])
def test_an_abbreviation_with_dots_is_no_host_name(raw: str) -> None:
    from discovery_svc.normalize.network import normalize_hostname

    assert normalize_hostname(raw) == (None, None)


@pytest.mark.parametrize(
    "above",
    ["\n", ";;;;\n", ",,,\n", "#TYPE System.Management.Automation.PSCustomObject\n"],
)
def test_lines_above_the_header_that_are_not_it(above: str) -> None:
    from discovery_svc.domain.csv_stream import CsvStreamParser

    stream = CsvStreamParser()
    stream.feed((above + "Name;IP\nweb01;10.0.0.1\n").encode())
    stream.close()
    assert stream.header == ["Name", "IP"]


def test_sccm_style_headers_and_a_tie_of_sockets_and_cores() -> None:
    """WMI's "Name0"; "Number of Processors" and "Number Of Cores" (cores of each)."""
    rows = [f"PC{i:04},10.0.0.{i + 1},{i % 2 + 1},{(i % 4 + 1) * 2}" for i in range(30)]
    by = _suggested("Name0,IP Address,Number of Processors,Number Of Cores", rows)
    assert by["Name0"].target_attribute in ("asset_name", "hostname")
    assert (by["Number of Processors"].target_attribute, by["Number of Processors"].state) == (
        "cpu_cores",
        State.SUGGESTED,
    )
    assert (by["Number Of Cores"].target_attribute, by["Number Of Cores"].state) == (
        "cores_per_socket",
        State.SUGGESTED,
    )


def test_a_socket_column_is_multiplied_by_cores_per_socket() -> None:
    rows = [f"srv{i:03},10.0.0.{i + 1},2,{(i % 4 + 1) * 2}" for i in range(30)]
    by = _suggested("Hostname,IP Address,Sockets,Cores per Socket", rows)
    assert by["Sockets"].target_attribute == "cpu_cores"
    assert by["Cores per Socket"].target_attribute == "cores_per_socket"


def test_a_yes_no_column_never_names_an_asset() -> None:
    rows = [f"PC{i:03},10.0.0.{i + 1},{'Yes' if i % 3 else 'No'}" for i in range(30)]
    by = _suggested("Computer,IP Address,Virtual Machine", rows)
    assert by["Virtual Machine"].target_attribute not in ("asset_name", "hostname")


def test_a_disk_per_row_export_keeps_its_host_name() -> None:
    """Three rows per host, a unique disk serial each: the host name still names assets."""
    rows = [f"srv{i // 3:03},10.0.0.{i // 3 + 1},DSK{i:05},{100 * (i % 3 + 1)}" for i in range(60)]
    by = _suggested("Hostname,IP Address,Disk Serial Number,Disk Size GB", rows)
    assert (by["Hostname"].target_attribute, by["Hostname"].state) == ("hostname", State.SUGGESTED)
    assert by["Hostname"].confidence >= 0.9, by["Hostname"]


def test_a_service_level_of_gold_and_silver_is_no_environment() -> None:
    rows = [f"srv{i:03},10.0.0.{i + 1},{['Gold', 'Silver', 'Bronze'][i % 3]}" for i in range(30)]
    level = _suggested("Hostname,IP Address,Service Level", rows)["Service Level"]
    assert level.target_attribute != "environment", level


def test_a_unit_column_without_its_size_is_not_suggested() -> None:
    rows = [f"srv{i:03},10.0.0.{i + 1},{'MB' if i % 2 else 'GB'}" for i in range(30)]
    unit = _suggested("Hostname,IP Address,ram_size_type", rows)["ram_size_type"]
    assert (unit.target_attribute, unit.state) == (None, State.UNMAPPED), unit
    assert "no column gives memory_gb" in unit.reason


def test_a_blank_cores_per_socket_keeps_the_sockets_as_a_lower_bound_and_says_so() -> None:
    cleansed = RowCleanser({0: "hostname", 1: "cpu_cores", 2: "cores_per_socket"}).cleanse(
        ["srv1", "2", ""]
    )
    assert cleansed.values["cpu_cores"] == 2
    assert [i.attribute for i in cleansed.issues] == ["cores_per_socket"]
    assert "lower bound" in cleansed.issues[0].problem


@pytest.mark.parametrize("workgroup", ["WORKGROUP", "(none)", "N/A"])
def test_a_workgroup_is_no_domain(workgroup: str) -> None:
    values = RowCleanser({0: "hostname", 1: "domain"}).cleanse(["PC01", workgroup]).values
    assert not values.get("domain")


# --- what an export is, VM hardware versions, headers in other scripts ------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (["Name", "PowerState", "NumCpu", "MemoryGB", "VMHost"], "virtual_machine"),
        (["VM", "Powerstate", "CPUs", "OS according to the VMware Tools"], "virtual_machine"),
        (["VMName", "State", "ProcessorCount", "MemoryAssigned"], "virtual_machine"),
        (["Server Name", "IP", "OS", "RAM GB", "Host"], None),
        # Ordinary inventories sharing generic headers with VM exports are no VM lists.
        (["NAME", "TYPE", "RESOURCE GROUP", "LOCATION", "SUBSCRIPTION"], None),
        (["Hostname", "OS", "Num CPU", "Cores per Socket", "Memory GB"], None),
        (["Host", "Datacenter", "Cluster", "# NICs", "# CPU", "Cores per CPU"], None),
        (["Host", "VM", "Cluster", "Datacenter", "OS"], None),
        (["ComputerName", "State", "ProcessorCount", "Memory"], None),
    ],
)
def test_an_export_whose_rows_are_all_vms_says_so(header: list[str], expected: str | None) -> None:
    from discovery_svc.normalize.asset_types import export_type

    found = export_type(header)
    assert (found[0] if found else None) == expected
    if found:
        assert "no type given; the export is a" in found[1]


def test_the_exports_type_comes_before_a_guess_from_the_name() -> None:
    cleanser = RowCleanser(
        {0: "asset_name"}, export_type=("virtual_machine", "the export is a VM list")
    )
    values = cleanser.cleanse(["sql-007"]).values
    assert values["asset_type_guess"] == "virtual_machine"
    # Without it, the name's word decides, as the last resort.
    assert RowCleanser({0: "asset_name"}).cleanse(["sql-007"]).values["asset_type_guess"] == (
        "database"
    )


def test_a_vm_hardware_version_is_no_os_version() -> None:
    rows = [f"vm{i:03},10.0.0.{i + 1},v{19 + i % 2}" for i in range(30)]
    version = _suggested("Name,IP Address,Version", rows)["Version"]
    assert version.target_attribute != "os_version", version


@pytest.mark.parametrize(
    ("header", "attribute"),
    [("Gerätetyp", "asset_type"), ("Domäne", "domain"), ("Mémoire (GB)", "memory_gb")],
)
def test_accented_headers_read_as_their_transliteration(header: str, attribute: str) -> None:
    values = {
        "asset_type": "Server",
        "domain": "CORP",
        "memory_gb": "16",
    }[attribute]
    rows = [f"srv{i:03},{values}" for i in range(20)]
    assert _suggested(f"hostname,{header}", rows)[header].target_attribute == attribute


def test_a_type_cell_that_did_not_parse_is_not_overruled_by_the_export() -> None:
    cleanser = RowCleanser(
        {0: "asset_name", 1: "asset_type"}, export_type=("virtual_machine", "a VM list")
    )
    values = cleanser.cleanse(["sw-core-01", "Ethernet Gizmo"]).values
    assert values["asset_type_guess"] != "virtual_machine"


@pytest.mark.parametrize(
    "header",
    ["Server,CPU,Cores", "Server,CPU Sockets,CPU Cores", "Server,Sockets,Cores"],
)
def test_a_core_count_beside_sockets_is_not_multiplied_unless_wmi_says_per_processor(
    header: str,
) -> None:
    rows = [f"srv{i:03},{i % 2 + 1},{(i % 4 + 1) * 8}" for i in range(30)]
    by = _suggested(header, rows)
    assert "cores_per_socket" not in {m.target_attribute for m in by.values()}, by


def test_the_wmi_pair_waits_for_a_person() -> None:
    rows = [f"PC{i:04},{i % 2 + 1},{(i % 4 + 1) * 2}" for i in range(30)]
    by = _suggested("Name,Number of Processors,Number Of Cores", rows)
    assert by["Number Of Cores"].target_attribute == "cores_per_socket"
    assert by["Number Of Cores"].confidence < 0.85  # below the auto-approval threshold


def test_small_counts_are_no_criticality() -> None:
    rows = [f"srv{i:03},{i % 3 + 1},{i % 2 + 1}" for i in range(30)]
    by = _suggested("Hostname,NICs,Disks", rows)
    assert by["NICs"].target_attribute != "business_criticality", by["NICs"]
    tier = _suggested("Hostname,Tier", rows=[f"srv{i:03},{i % 3 + 1}" for i in range(30)])
    assert tier["Tier"].target_attribute == "business_criticality", tier["Tier"]


@pytest.mark.parametrize("raw", ["o.A.", "N.N.", "z.B.", "x.y"])
def test_a_dotted_abbreviation_is_a_placeholder_name(raw: str) -> None:
    from discovery_svc.domain import identity

    assert identity.is_placeholder(raw)
    cleansed = RowCleanser({0: "hostname", 1: "ip_address"}).cleanse([raw, "10.0.0.1"])
    assert "hostname" not in cleansed.values and not cleansed.issues
    assert cleansed.values[PLACEHOLDER_NAME] == raw
