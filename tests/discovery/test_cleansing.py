"""Value normalisers and RowCleanser: tables of tricky inputs, the real export, throughput."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from discovery_svc.domain.cleansing import (
    CleansedRow,
    HostInfo,
    Issue,
    OsInfo,
    RowCleanser,
    normalize_asset_type,
    normalize_criticality,
    normalize_depends_on,
    normalize_environment,
    normalize_hostname,
    normalize_int,
    normalize_ip,
    normalize_os,
    normalize_size_gb,
    normalize_text,
)

REAL_EXPORT = (
    Path(__file__).resolve().parents[2]
    / "examples"
    / "realdata"
    / "servicenow_style_cmdb_export.csv"
)

NO_TYPE = "no type given, and nothing else tells"
SERVER = "no type given; it has a host name, an OS or an IP address"

PLACEHOLDERS = (
    "",
    "   ",
    "\t",
    "N/A",
    "n/a",
    "NA",
    "-",
    "--",
    "null",
    "None",
    "unknown",
    "TBD",
    "?",
)


@pytest.mark.parametrize("raw", PLACEHOLDERS)
def test_placeholders_are_missing_not_issues(raw: str) -> None:
    assert normalize_os(raw) == (None, None)
    assert normalize_size_gb(raw) == (None, None)
    assert normalize_ip(raw) == (None, None)
    assert normalize_hostname(raw) == (None, None)
    assert normalize_environment(raw) == (None, None)
    assert normalize_int(raw, low=1, high=1024) == (None, None)
    assert normalize_criticality(raw) == (None, None)
    assert normalize_asset_type(raw) == (None, None)
    assert normalize_text(raw) == (None, None)
    assert normalize_depends_on(raw) == (None, None)


# ------------------------------------------------------------------------------------------ OS


@pytest.mark.parametrize(
    ("raw", "family", "name", "version"),
    [
        ("Win2k19", "windows", "Windows Server", "2019"),
        ("Win2019", "windows", "Windows Server", "2019"),
        ("Windows 2019", "windows", "Windows Server", "2019"),
        ("Microsoft Windows Server 2019 Datacenter", "windows", "Windows Server", "2019"),
        ("Win2k12R2", "windows", "Windows Server", "2012 R2"),
        ("Windows 2012 R2 Standard", "windows", "Windows Server", "2012 R2"),
        ("Windows Server 2008 R2 SP1 (64-bit)", "windows", "Windows Server", "2008 R2 SP1"),
        ("Windows 2003 Standard", "windows", "Windows Server", "2003"),
        ("Win2k8", "windows", "Windows Server", "2008"),
        ("Win2k", "windows", "Windows Server", "2000"),
        ("  windows server 2022  ", "windows", "Windows Server", "2022"),
        ("Windows 10 Enterprise", "windows", "Windows", "10"),
        ("Microsoft Windows 7 Enterprise", "windows", "Windows", "7"),
        ("Win10", "windows", "Windows", "10"),
        ("Windows XP", "windows", "Windows", "XP"),
        ("Windows", "windows", "Windows", ""),
        ("Windows Server", "windows", "Windows Server", ""),
        ("RHEL 8.6", "linux", "RHEL", "8.6"),
        ("Red Hat Enterprise Linux 8.6", "linux", "RHEL", "8.6"),
        ("Red Hat Enterprise Linux Server release 7.9 (Maipo)", "linux", "RHEL", "7.9"),
        ("RHEL8", "linux", "RHEL", "8"),
        ("Linux Red Hat", "linux", "RHEL", ""),
        ("CentOS 7.9", "linux", "CentOS", "7.9"),
        ("Ubuntu 22.04 LTS", "linux", "Ubuntu", "22.04"),
        # Several versions name a catalogue entry, not this host's release: no version, no issue.
        ("Oracle Linux 4/5/6 (64-bit)", "linux", "Oracle Linux", ""),
        ("Oracle Linux 8.7 x86_64", "linux", "Oracle Linux", "8.7"),
        ("SLES 15 SP4", "linux", "SUSE", "15 SP4"),
        ("SUSE Linux Enterprise Server 15", "linux", "SUSE", "15"),
        ("Debian 11", "linux", "Debian", "11"),
        ("Debian GNU/Linux 12 (bookworm)", "linux", "Debian", "12"),
        ("AIX 7.2", "unix", "AIX", "7.2"),
        ("Solaris 11", "unix", "Solaris", "11"),
        ("VMware ESXi 7.0", "esxi", "ESXi", "7.0"),
        ("VMware ESXi 7.0 Update 3", "esxi", "ESXi", "7.0"),
        ("Linux", "linux", "Linux", ""),
        ("LINUX 64-bit", "linux", "Linux", ""),
        ("macOS 14.2", "macos", "macOS", "14.2"),
    ],
)
def test_normalize_os(raw: str, family: str, name: str, version: str) -> None:
    assert normalize_os(raw) == (OsInfo(family, name, version), None)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("abc", 'unrecognised operating system "abc"'),
        ("Production", 'unrecognised operating system "Production"'),
        ("Winchester", 'unrecognised operating system "Winchester"'),
        # A Windows version we do not know is reported rather than dropped.
        ("Windows 2077", 'unrecognised Windows version "Windows 2077"'),
    ],
)
def test_normalize_os_issues(raw: str, problem: str) -> None:
    assert normalize_os(raw) == (None, problem)


# --------------------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("16 GB", 16.0),
        ("16GB", 16.0),
        ("16g", 16.0),
        ("16 G", 16.0),
        ("16 gb", 16.0),
        ("16384 MB", 16.0),
        ("16384m", 16.0),
        ("1.5 TB", 1536.0),
        ("1,5 TB", 1536.0),  # decimal comma
        ("1,024 MB", 1.0),  # thousands separator: one comma, exactly three digits after it
        ("1,048,576 KB", 1.0),
        ("1,024.5 GB", 1024.5),
        ("1.024,5 GB", 1024.5),
        ("512 MiB", 0.5),
        ("2 GiB", 2.0),
        ("0.5", 0.5),
        (".5", 0.5),
        ("16", 16.0),
        ("0", 0.0),
        ("+8 GB", 8.0),
        ("1000 MB", 0.977),  # binary units, rounded to three decimals
        ("1 PB", 1048576.0),
    ],
)
def test_normalize_size_gb(raw: str, expected: float) -> None:
    assert normalize_size_gb(raw) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "unit", "expected"),
    [("16384", "MB", 16.0), ("16", "GB", 16.0), ("2", "TB", 2048.0), ("4 GB", "MB", 4.0)],
)
def test_normalize_size_gb_default_unit(raw: str, unit: str, expected: float) -> None:
    assert normalize_size_gb(raw, default_unit=unit) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("16 XB", 'unknown size unit "16 XB"'),
        ("-4 GB", 'negative size "-4 GB"'),
        ("lots", 'not a size "lots"'),
        ("16 GB RAMS", 'not a size "16 GB RAMS"'),
        ("16 GB of something", 'not a size "16 GB of something"'),
        ("2x8 GB", 'not a size "2x8 GB"'),
        ("1,2,3 GB", 'ambiguous number in size "1,2,3 GB"'),
        ("1.2.3 GB", 'ambiguous number in size "1.2.3 GB"'),
        ("1,5.5 GB", 'ambiguous number in size "1,5.5 GB"'),
        ("16.", 'ambiguous number in size "16."'),
    ],
)
def test_normalize_size_gb_issues(raw: str, problem: str) -> None:
    assert normalize_size_gb(raw) == (None, problem)


def test_normalize_size_gb_rejects_unknown_default_unit() -> None:
    with pytest.raises(ValueError, match="unknown size unit"):
        normalize_size_gb("16", default_unit="XB")


# ------------------------------------------------------------------------------------------ IP


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("  10.0.0.1 ", "10.0.0.1"),
        ("010.001.002.003", "10.1.2.3"),  # zero-padded for text sorting; read as decimal
        ("10.0.0.1/24", "10.0.0.1"),
        ("FE80::0001", "fe80::1"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("2001:db8::1/64", "2001:db8::1"),
    ],
)
def test_normalize_ip(raw: str, expected: str) -> None:
    assert normalize_ip(raw) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("10.0.0.256", 'invalid IP address "10.0.0.256"'),
        ("0256.1.1.1", 'invalid IP address "0256.1.1.1"'),
        ("10.0.0", 'invalid IP address "10.0.0"'),
        ("10.0.0.1/33", 'invalid IP address "10.0.0.1/33"'),
        ("web01", 'invalid IP address "web01"'),
        (
            "10.0.0.1, web01",
            'several values in one address cell, not all addresses "10.0.0.1, web01"',
        ),
        ("fe80::1 ::1", 'only link-local or loopback addresses "fe80::1 ::1"'),
    ],
)
def test_normalize_ip_issues(raw: str, problem: str) -> None:
    assert normalize_ip(raw) == (None, problem)


# ------------------------------------------------------------------------------------ hostname


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "WEB01.Corp.Example.com",
            HostInfo("web01", "corp.example.com", "web01.corp.example.com"),
        ),
        ("aaa0001", HostInfo("aaa0001", "", "aaa0001")),
        (" DB-02 ", HostInfo("db-02", "", "db-02")),
        ("app01.example.com.", HostInfo("app01", "example.com", "app01.example.com")),
        ("SQL_PROD_01", HostInfo("sql_prod_01", "", "sql_prod_01")),  # NetBIOS-style underscore
        ("1host", HostInfo("1host", "", "1host")),
    ],
)
def test_normalize_hostname(raw: str, expected: HostInfo) -> None:
    assert normalize_hostname(raw) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("web 01", 'host name contains spaces "web 01"'),
        ("web_01!", 'invalid host name "web_01!"'),
        ("CORP\\web01", 'invalid host name "CORP\\web01"'),
        ("-web01", 'invalid host name "-web01"'),
        ("web01..corp", 'invalid host name "web01..corp"'),
        ("x" * 64, f'invalid host name "{"x" * 64}"'),
        ("10.0.0.1", 'looks like an IP address, not a host name "10.0.0.1"'),
        ("010.000.000.001", 'looks like an IP address, not a host name "010.000.000.001"'),
        ("fe80::1", 'looks like an IP address, not a host name "fe80::1"'),
    ],
)
def test_normalize_hostname_issues(raw: str, problem: str) -> None:
    assert normalize_hostname(raw) == (None, problem)


# ------------------------------------------------------------------------- synonym tables


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("prod", "production"),
        ("Production", "production"),
        ("PRD", "production"),
        ("prd", "production"),
        ("Prod ", "production"),
        ("live", "production"),
        ("P", "production"),
        ("stage", "staging"),
        ("Staging", "staging"),
        ("stg", "staging"),
        ("preprod", "staging"),
        ("Pre-Prod", "staging"),
        ("pre prod", "staging"),
        ("test", "test"),
        ("TST", "test"),
        ("Testing", "test"),
        ("dev", "development"),
        ("Development", "development"),
        ("DEVL", "development"),
        ("DR", "dr"),
        ("Disaster  Recovery", "dr"),
        ("QA", "qa"),
        ("uat", "uat"),
        ("User Acceptance", "uat"),
        ("Training", "training"),
        ("sandbox", "sandbox"),
    ],
)
def test_normalize_environment(raw: str, expected: str) -> None:
    assert normalize_environment(raw) == (expected, None)


@pytest.mark.parametrize("raw", ["prodd", "Operational", "T", "production-ish"])
def test_normalize_environment_issues(raw: str) -> None:
    assert normalize_environment(raw) == (None, f'unrecognised environment "{raw}"')


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("critical", "critical"),
        ("Critical", "critical"),
        ("Mission Critical", "critical"),
        ("mission-critical", "critical"),
        ("Tier 0", "critical"),
        ("Tier 1", "critical"),
        ("tier1", "critical"),
        ("1", "critical"),
        ("P1", "critical"),
        ("1 - most critical", "critical"),
        ("High", "high"),
        ("Tier 2", "high"),
        ("2", "high"),
        ("medium", "medium"),
        ("Moderate", "medium"),
        ("tier 3", "medium"),
        ("3", "medium"),
        ("LOW", "low"),
        ("Tier 4", "low"),
        ("4", "low"),
        ("non-critical", "low"),
        ("Non-critical", "low"),
        ("4 - not critical", "low"),
    ],
)
def test_normalize_criticality(raw: str, expected: str) -> None:
    assert normalize_criticality(raw) == (expected, None)


@pytest.mark.parametrize("raw", ["Application", "5", "Tier 5", "very high", "critical!"])
def test_normalize_criticality_issues(raw: str) -> None:
    assert normalize_criticality(raw) == (None, f'unrecognised business criticality "{raw}"')


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Windows Server", "server"),
        ("Linux Server", "server"),
        ("cmdb_ci_server", "server"),
        ("CMDB_CI_WIN_SERVER", "server"),
        ("VM", "virtual_machine"),
        ("Virtual Machine", "virtual_machine"),
        ("Database", "database"),
        ("cmdb_ci_db_instance", "database"),
        ("SQL", "database"),
        ("Switch", "network_device"),
        ("Router", "network_device"),
        ("Firewall", "network_device"),
        ("Load Balancer", "network_device"),
        ("load-balancer", "network_device"),
        ("Application", "application"),
        ("Business Service", "application"),
        ("Storage", "storage"),
        ("Other", "other"),
    ],
)
def test_normalize_asset_type(raw: str, expected: str) -> None:
    assert normalize_asset_type(raw) == (expected, None)


@pytest.mark.parametrize("raw", ["Widget", "cmdb_ci_foo", "Server farm"])
def test_normalize_asset_type_issues(raw: str) -> None:
    assert normalize_asset_type(raw) == (None, f'unrecognised asset type "{raw}"')


# ------------------------------------------------------------------------------- int and text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("4", 4),
        (" 8 ", 8),
        ("4.0", 4),
        ("4.00", 4),
        ("4 cores", 4),
        ("4 vCPU", 4),
        ("4vcpus", 4),
        ("1 core", 1),
        ("1,024", 1024),
        ("+2", 2),
    ],
)
def test_normalize_int(raw: str, expected: int) -> None:
    assert normalize_int(raw, low=1, high=1024) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("2x4", 'not a whole number "2x4"'),  # sockets x cores? cores x threads? don't guess
        ("4.5", 'not a whole number "4.5"'),
        ("four", 'not a whole number "four"'),
        ("4 sockets", 'not a whole number "4 sockets"'),
        ("0", 'out of range 1..1024 "0"'),
        ("-2", 'out of range 1..1024 "-2"'),
        ("1025", 'out of range 1..1024 "1025"'),
        ("2,048", 'out of range 1..1024 "2,048"'),
    ],
)
def test_normalize_int_issues(raw: str, problem: str) -> None:
    assert normalize_int(raw, low=1, high=1024) == (None, problem)


def test_normalize_int_range_is_part_of_the_cache_key() -> None:
    assert normalize_int("64", low=1, high=1024) == (64, None)
    assert normalize_int("64", low=1, high=32) == (None, 'out of range 1..32 "64"')


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Bob   Todd ", "Bob Todd"),
        ("R&D", "R&D"),
        ("line\nbreak\ttab", "line break tab"),
        ("!!!", "!!!"),
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("web01; WEB02.corp.com.", ["web01", "web02.corp.com"]),
        ("a,b|c", ["a", "b", "c"]),
        ("db01\nDB02\r\n", ["db01", "db02"]),
        ("Payroll  Service, web01, web01", ["payroll service", "web01"]),
        ("web01;;N/A;", ["web01"]),
        ("; ,", None),
    ],
)
def test_normalize_depends_on(raw: str, expected: list[str] | None) -> None:
    assert normalize_depends_on(raw) == (expected, None)


# ------------------------------------------------------------------------------- RowCleanser


def test_row_cleanser_expands_and_dispatches() -> None:
    cleanser = RowCleanser(
        {
            0: "hostname",
            1: "ip_address",
            2: "operating_system",
            3: "cpu_cores",
            4: "memory_gb",
            5: "storage_gb",
            6: "asset_type",
            7: "depends_on",
            8: "custom:cost_centre",
            9: "owner",
        },
        memory_unit_hint="MB",
        storage_unit_hint="TB",
    )
    row = [
        "WEB01.Corp.Example.com",
        "010.000.000.005",
        "RHEL 8.6",
        "4 vCPU",
        "16384",
        "2",
        "VM",
        "db01;db02",
        "  CC 42 ",
        "",
    ]
    result = cleanser.cleanse(row)
    assert result == CleansedRow(
        {
            "hostname": "web01",
            "domain": "corp.example.com",
            "fqdn": "web01.corp.example.com",
            "ip_address": "10.0.0.5",
            "cpu_cores": 4,
            "memory_gb": 16.0,
            "storage_gb": 2048.0,
            "asset_type": "virtual_machine",
            "depends_on": ["db01", "db02"],
            "custom": {"cost_centre": "CC 42"},
            "operating_system": "RHEL 8.6",
            "os_family": "linux",
            "os_version": "8.6",
        },
        [],
    )
    # The dependency list is a fresh list per row, so callers may mutate it safely.
    deps = result.values["depends_on"]
    assert isinstance(deps, list)
    deps.append("mutated")
    assert cleanser.cleanse(row).values["depends_on"] == ["db01", "db02"]


def test_row_cleanser_reports_issues_with_truncated_value() -> None:
    cleanser = RowCleanser({0: "memory_gb", 1: "cpu_cores", 2: "operating_system", 3: "hostname"})
    long_value = "x" * 500 + " GB"
    result = cleanser.cleanse([long_value, "2x4", "abc", "10.1.1.1"])
    assert result.values == {"asset_type_guess": "other", "asset_type_reason": NO_TYPE}
    assert [(i.attribute, i.problem[:20]) for i in result.issues] == [
        ("memory_gb", "not a size " + '"' + "x" * 8),
        ("cpu_cores", 'not a whole number "'),
        ("operating_system", "unrecognised operati"),
        ("hostname", "looks like an IP add"),
    ]
    assert result.issues[0].value == "x" * 200
    assert len(result.issues[0].problem) < 120
    assert result.issues[1] == Issue("cpu_cores", "2x4", 'not a whole number "2x4"')


def test_row_cleanser_os_version_column_overrides_parsed_version() -> None:
    cleanser = RowCleanser({0: "operating_system", 1: "os_version"})
    assert cleanser.cleanse(["Oracle Linux 4/5/6 (64-bit)", "6.10"]).values == {
        "operating_system": "Oracle Linux 6.10",
        "os_family": "linux",
        "os_version": "6.10",
        "asset_type_guess": "server",
        "asset_type_reason": SERVER,
    }
    assert cleanser.cleanse(["RHEL 8", ""]).values["os_version"] == "8"
    assert cleanser.cleanse(["", "8.6"]).values == {
        "os_version": "8.6",
        "asset_type_guess": "other",
        "asset_type_reason": NO_TYPE,
    }
    # The version column does not lose the service pack the string names, nor the reverse.
    assert cleanser.cleanse(["SLES 15 SP4", "15"]).values["os_version"] == "15 SP4"
    assert cleanser.cleanse(["SLES 15", "SP4"]).values["operating_system"] == "SUSE 15 SP4"
    assert cleanser.cleanse(["Windows Server 2008", "Service Pack 2"]).values["os_version"] == (
        "2008 SP2"
    )


def test_row_cleanser_short_rows_are_missing_values() -> None:
    cleanser = RowCleanser({0: "hostname", 5: "environment"})
    result = cleanser.cleanse(["web01"])
    assert result.values == {
        "hostname": "web01",
        "domain": "",
        "fqdn": "web01",
        "asset_type_guess": "server",
        "asset_type_reason": SERVER,
    }
    assert result.issues == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mapping": {0: "colour"}}, "unknown target attribute"),
        ({"mapping": {0: "owner", 1: "owner"}}, "mapped from several columns"),
        ({"mapping": {0: "custom:"}}, "custom attribute without a name"),
        ({"mapping": {-1: "owner"}}, "negative column index"),
        ({"mapping": {0: "memory_gb"}, "memory_unit_hint": "XB"}, "unknown size unit"),
    ],
)
def test_row_cleanser_rejects_bad_configuration(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RowCleanser(**kwargs)  # type: ignore[arg-type]


def test_row_cleanser_on_real_export() -> None:
    with REAL_EXPORT.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    cleanser = RowCleanser(
        {
            7: "hostname",
            5: "operating_system",
            0: "environment",
            3: "location",
            16: "business_criticality",
            12: "application_name",
        }
    )
    results = [cleanser.cleanse(row) for row in rows]

    first, second, third = results[0], results[1], results[2]
    assert first.values == {
        "environment": "production",
        "location": "EMEA",
        "operating_system": "Windows Server 2003",
        "os_family": "windows",
        "os_version": "2003",
        "hostname": "aaa0001",
        "domain": "",
        "fqdn": "aaa0001",
        "business_criticality": "critical",
        "asset_type_guess": "server",
        "asset_type_reason": SERVER,
    }
    assert second.values["operating_system"] == "Windows Server 2012 R2"
    assert second.values["os_family"] == "windows"
    assert third.values["operating_system"] == "Oracle Linux"
    assert third.values["os_version"] == ""
    assert third.issues == []

    by_host = {r.values["hostname"]: r for r in results}
    assert by_host["aaa0005"].values["business_criticality"] == "low"  # "Non-critical"
    # "Application" in the criticality column is reported, not guessed.
    app = by_host["aaa0008"]
    assert "business_criticality" not in app.values
    assert app.issues == [
        Issue(
            "business_criticality",
            "Application",
            'unrecognised business criticality "Application"',
        )
    ]

    environments = {r.values.get("environment") for r in results}
    assert environments == {"production", "development", "test", "training"}
    # Every OS in the export is recognised, and the only issues are the "Application" cells.
    assert all(r.values.get("os_family") in {"windows", "linux"} for r in results)
    issues = [i for r in results for i in r.issues]
    assert len(issues) == sum(1 for row in rows if row[16] == "Application")
    assert {i.attribute for i in issues} == {"business_criticality"}
    assert all("application_name" not in r.values for r in results)  # empty column


def test_row_cleanser_on_many_generated_rows() -> None:
    rng = random.Random(42)
    oses = ["Windows 2016 Standard", "RHEL 8.6", "Win2k12R2", "Ubuntu 22.04 LTS", "AIX 7.2"]
    envs = ["Prod", "DEV", "tst", "UAT", "pre-prod"]
    sizes = ["16 GB", "32GB", "8192 MB", "1,5 TB", "64"]
    rows = [
        [
            f"srv{rng.randrange(5000):05d}.corp.example.com",
            f"10.{rng.randrange(4)}.{rng.randrange(8)}.{rng.randrange(256)}",
            rng.choice(oses),
            rng.choice(["2", "4", "8", "16 vCPU"]),
            rng.choice(sizes),
            rng.choice(envs),
            rng.choice(["Critical", "Tier 2", "low", "Non-critical"]),
            rng.choice(["Bob Todd", "Nick Costas", " Sarah  Mellor "]),
        ]
        for _ in range(20_000)
    ]
    cleanser = RowCleanser(
        {
            0: "hostname",
            1: "ip_address",
            2: "operating_system",
            3: "cpu_cores",
            4: "memory_gb",
            5: "environment",
            6: "business_criticality",
            7: "owner",
        }
    )
    results = [cleanser.cleanse(row) for row in rows]
    assert not any(r.issues for r in results)
    assert {r.values["memory_gb"] for r in results} == {16.0, 32.0, 8.0, 1536.0, 64.0}


@pytest.mark.parametrize("raw", ["9" * 400, "1" + "0" * 307 + " PB", "5000000000 TB"])
def test_sizes_beyond_range_are_issues_not_infinity(raw: str) -> None:
    value, problem = normalize_size_gb(raw)
    assert value is None and problem is not None and "out of range" in problem


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("AT-100", "AT-100"),
        ("  AT-100\t", "AT-100"),
        ("AT  100", "AT 100"),
        ("N/A", None),
        ("0", None),
        ("xxx", None),
        ("unknown tag", None),
        ("TBD-asset", None),
        ("", None),
    ],
)
def test_asset_tag_is_a_trimmed_identifier_and_placeholders_are_no_tag(
    raw: str, expected: str | None
) -> None:
    cleansed = RowCleanser({0: "asset_name", 1: "asset_tag"}).cleanse(["kiosk", raw])
    assert cleansed.values.get("asset_tag") == expected
    assert cleansed.issues == []
