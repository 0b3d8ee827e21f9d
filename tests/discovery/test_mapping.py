"""suggest(): header synonyms and profiled values → one target attribute per column.

Every CSV is profiled in Python (``tests/discovery/profiling.py``, the same patterns as the
service's SQL), so these run without a database.
"""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from discovery_svc.domain.mapping import suggest
from discovery_svc.domain.mapping_set import REQUIRED, FieldMapping, State
from tests.discovery.profiling import profile_csv

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SAMPLE = EXAMPLES / "cmdb_export.csv"
INVENTORY = EXAMPLES / "inventory.csv"
REAL_EXPORT = EXAMPLES / "realdata" / "servicenow_style_cmdb_export.csv"


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8-sig")


def _by_column(mappings: Sequence[FieldMapping]) -> dict[str, FieldMapping]:
    return {m.source_column: m for m in mappings}


def _assert_one_column_per_attribute(mappings: Sequence[FieldMapping]) -> None:
    suggested = Counter(
        m.target_attribute for m in mappings if m.state in (State.SUGGESTED, State.APPROVED)
    )
    doubled = {attr: n for attr, n in suggested.items() if n > 1}
    assert not doubled, f"attributes suggested for several columns: {doubled}"


def _assert_well_formed(mappings: Sequence[FieldMapping]) -> None:
    for m in mappings:
        assert 0.0 <= m.confidence <= 1.0, m
        assert m.reason.strip(), m
        if m.state == State.UNMAPPED:
            assert m.target_attribute is None, m
        else:
            assert m.target_attribute is not None, m
    _assert_one_column_per_attribute(mappings)


def _csv(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _suggest_csv(text: str) -> list[FieldMapping]:
    mappings = suggest(profile_csv(text))
    _assert_well_formed(mappings)
    return mappings


# --- realistic value generators ----------------------------------------------------------------

_APPS = ("Payroll", "CRM", "Billing", "Intranet", "Monitoring", "HR Portal", "Data Lake", "ERP")
_ROLES = ("Web", "App", "DB", "Batch", "Proxy")
_ENVS = ("Production", "Test", "Development", "Staging", "DR")
_OSES = (
    "Windows Server 2019 Datacenter",
    "Windows Server 2022 Standard",
    "Red Hat Enterprise Linux 8.6",
    "RHEL 9.2",
    "Ubuntu 22.04 LTS",
    "SLES 15 SP4",
    "CentOS 7.9",
    "Oracle Linux 7.9",
)
_TYPES = ("Server", "Virtual Machine", "Database", "Appliance", "Load Balancer")
_GB = (4, 8, 16, 32, 64, 128, 256)
_CPUS = (1, 2, 4, 8, 16, 32)

Row = dict[str, str]
Value = Callable[[Row], str]


def _rows(count: int, seed: int) -> list[Row]:
    """Consistent facts per server, from which every column spelling takes its value."""
    rng = random.Random(seed)
    rows: list[Row] = []
    for n in range(1, count + 1):
        app = rng.choice(_APPS)
        role = rng.choice(_ROLES)
        env = rng.choice(_ENVS)
        short = f"{app.replace(' ', '').lower()[:6]}{role.lower()}{env[0].lower()}{n:02d}"
        gb = rng.choice(_GB)
        rows.append(
            {
                "asset_name": f"{app} {role} {env} {n:02d}",
                "asset_type": rng.choice(_TYPES),
                "short": short,
                "fqdn": f"{short}.corp.example.com",
                "ip": f"10.{rng.randint(0, 40)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                "os": rng.choice(_OSES),
                "gb": str(gb),
                "mb": str(gb * 1024),
                "cpus": str(rng.choice(_CPUS)),
                "env": env,
                "backup": rng.choice(("Success", "Failed", "Warning", "Success", "Success")),
            }
        )
    return rows


def _fact(key: str) -> Value:
    return lambda r: r[key]


_SIZE_GB: Value = lambda r: f"{r['gb']} GB"  # noqa: E731

# For each required attribute: header spellings and the values a column under it holds.
SPELLINGS: dict[str, tuple[tuple[str, Value], ...]] = {
    "asset_name": (
        ("Asset Name", _fact("asset_name")),
        ("Name", _fact("asset_name")),
        ("Asset_Name", _fact("asset_name")),
        ("assetName", _fact("asset_name")),
        ("CI Name", _fact("asset_name")),
    ),
    "asset_type": (
        ("Asset Type", _fact("asset_type")),
        ("Type", _fact("asset_type")),
        ("Class", _fact("asset_type")),
        ("CI Class", _fact("asset_type")),
        ("Device Type", _fact("asset_type")),
    ),
    "hostname": (
        ("HOST_NAME", _fact("fqdn")),
        ("hostName", _fact("short")),
        ("Host Name", _fact("fqdn")),
        ("Computer Name", _fact("short")),
        ("Hostname", _fact("fqdn")),
        ("FQDN", _fact("fqdn")),
    ),
    "ip_address": (
        ("IP Address", _fact("ip")),
        ("ip_addr", _fact("ip")),
        ("IPv4", _fact("ip")),
        ("IP", _fact("ip")),
        ("IPv4 Address", _fact("ip")),
        ("ipAddress", _fact("ip")),
    ),
    "operating_system": (
        ("Operating System", _fact("os")),
        ("OS", _fact("os")),
        ("O.S.", _fact("os")),
        ("O/S", _fact("os")),
        ("OS Name", _fact("os")),
        ("OperatingSystem", _fact("os")),
    ),
    "memory_gb": (
        ("RAM (GB)", _fact("gb")),
        ("Memory (MB)", _fact("mb")),
        ("Mem", _SIZE_GB),
        ("Memory", _SIZE_GB),
        ("RAM_GB", _fact("gb")),
        ("RAM", _SIZE_GB),
    ),
    "cpu_cores": (
        ("vCPUs", _fact("cpus")),
        ("CPU Count", _fact("cpus")),
        ("# CPUs", _fact("cpus")),
        ("Num CPUs", _fact("cpus")),
        ("vCPU", _fact("cpus")),
        ("Number of CPUs", _fact("cpus")),
    ),
}
assert set(SPELLINGS) == set(REQUIRED)

_EXTRAS: tuple[tuple[str, Value], ...] = (
    ("Environment", _fact("env")),
    ("Backup Status", _fact("backup")),
)


def _generated(columns: Sequence[tuple[str, Value]], *, rows: int, seed: int) -> str:
    facts = _rows(rows, seed)
    return _csv([h for h, _ in columns], [[value(r) for _, value in columns] for r in facts])


def _mixed_file(index: int) -> tuple[dict[str, str], str]:
    """File ``index``: the ``index``-th spelling of each attribute, columns rotated."""
    chosen = {attr: options[index % len(options)] for attr, options in SPELLINGS.items()}
    columns = [*chosen.values(), *_EXTRAS]
    shift = index % len(columns)
    columns = columns[shift:] + columns[:shift]
    expected = {attr: header for attr, (header, _) in chosen.items()}
    return expected, _generated(columns, rows=20 + 7 * index, seed=index)


# --- 1. the project's messy sample -----------------------------------------------------------

SAMPLE_EXPECTED = {
    "CI Name": "asset_name",
    "CI Class": "asset_type",
    "Server Name": "hostname",
    "IP Addr": "ip_address",
    "O/S": "operating_system",
    "vCPU": "cpu_cores",
    "RAM": "memory_gb",
    "Disk (GB)": "storage_gb",
    "Env": "environment",
    "App": "application_name",
    "Owner": "owner",
    "Site": "location",
    "Serial #": "serial_number",
    "Depends On": "depends_on",
    "Criticality": "business_criticality",
}


def test_sample_export_maps_every_column_to_the_right_attribute() -> None:
    mappings = _suggest_csv(_read(SAMPLE))
    found = {m.source_column: m.target_attribute for m in mappings}
    assert found == SAMPLE_EXPECTED
    for m in mappings:
        assert m.state == State.SUGGESTED, m
        assert 0.0 < m.confidence <= 1.0, m
        assert m.source_column in m.reason, m


def test_sample_export_suggests_every_required_attribute() -> None:
    mappings = _suggest_csv(_read(SAMPLE))
    suggested = {m.target_attribute for m in mappings if m.state == State.SUGGESTED}
    assert set(REQUIRED) <= suggested


def test_values_confirming_a_header_show_in_confidence_and_reason() -> None:
    by_column = _by_column(_suggest_csv(_read(SAMPLE)))
    ip = by_column["IP Addr"]
    # A synonym alone gives 0.9; IPv4 values on top of it raise that.
    assert ip.confidence > 0.9
    assert "IPv4" in ip.reason and "100%" in ip.reason
    assert "operating-system" in by_column["O/S"].reason


# --- 2. other header spellings -----------------------------------------------------------------


@pytest.mark.parametrize("index", range(6), ids=lambda i: f"file{i}")
def test_generated_exports_with_other_spellings_map_every_required_attribute(
    index: int,
) -> None:
    expected, text = _mixed_file(index)
    by_column = _by_column(_suggest_csv(text))
    for attr, header in expected.items():
        m = by_column[header]
        assert (m.target_attribute, m.state) == (attr, State.SUGGESTED), m
    assert by_column["Environment"].target_attribute == "environment"
    assert by_column["Backup Status"].state == State.UNMAPPED


@pytest.mark.parametrize(
    ("attribute", "header"),
    [(attr, header) for attr, options in SPELLINGS.items() for header, _ in options],
)
def test_each_spelling_maps_its_attribute(attribute: str, header: str) -> None:
    """One spelling at a time, among canonically named columns."""
    columns = [
        next(o for o in SPELLINGS[a] if o[0] == header) if a == attribute else SPELLINGS[a][0]
        for a in REQUIRED
    ]
    if attribute != "hostname":
        columns[REQUIRED.index("hostname")] = ("Hostname", _fact("fqdn"))
    by_column = _by_column(_suggest_csv(_generated(columns, rows=30, seed=7)))
    m = by_column[header]
    assert (m.target_attribute, m.state) == (attribute, State.SUGGESTED), m
    # The header itself is recognised, not only the values under it.
    assert header in m.reason and "says nothing" not in m.reason, m


_OWNER: Value = lambda r: "Platform Ops"  # noqa: E731
_TAG: Value = lambda r: f"AT-{r['cpus']}{r['gb']}"  # noqa: E731


@pytest.mark.parametrize(
    ("header", "attribute", "values"),
    [
        ("Support Group", "owner", _OWNER),
        ("assigned_to", "owner", _OWNER),
        ("CPU Qty", "cpu_cores", _fact("cpus")),
        ("cpucount", "cpu_cores", _fact("cpus")),
        ("Memory (GiB)", "memory_gb", _fact("gb")),
        ("Hostname (FQDN)", "hostname", _fact("fqdn")),
        ("Asset Tag", "asset_tag", _TAG),
        ("asset_tag", "asset_tag", _TAG),
        ("Tag Number", "asset_tag", _TAG),
        ("u_asset_tag", "asset_tag", _TAG),
    ],
)
def test_header_synonyms_from_the_vocabulary_file(
    header: str, attribute: str, values: Value
) -> None:
    """Spellings only header_synonyms.json knows (the mapper's table is that file)."""
    columns = [(header, values) if a == attribute else SPELLINGS[a][0] for a in REQUIRED]
    if attribute not in REQUIRED:
        columns.append((header, values))
    by_column = _by_column(_suggest_csv(_generated(columns, rows=30, seed=11)))
    m = by_column[header]
    assert (m.target_attribute, m.state) == (attribute, State.SUGGESTED), m
    assert "synonym of " + attribute in m.reason, m


# --- 3. headers that say nothing: values decide -------------------------------------------------


def _anonymous_columns_csv() -> str:
    columns: list[tuple[str, Value]] = [
        ("Asset Name", _fact("asset_name")),
        ("col_3", _fact("fqdn")),
        ("Field 5", _fact("os")),
        ("Column7", _fact("ip")),
        ("Environment", _fact("env")),
    ]
    return _generated(columns, rows=25, seed=3)


def test_values_name_the_attribute_when_the_header_says_nothing() -> None:
    by_column = _by_column(_suggest_csv(_anonymous_columns_csv()))
    expectations = {
        "Column7": ("ip_address", "IPv4 addresses"),
        "col_3": ("hostname", "fully qualified domain names"),
        "Field 5": ("operating_system", "operating-system names"),
    }
    for header, (attr, kind) in expectations.items():
        m = by_column[header]
        assert (m.target_attribute, m.state) == (attr, State.SUGGESTED), m
        assert kind in m.reason and "100%" in m.reason, m
        assert header in m.reason, m


def test_value_evidence_alone_ranks_below_a_confirmed_header() -> None:
    anonymous = _by_column(_suggest_csv(_anonymous_columns_csv()))["Column7"]
    named = _by_column(_suggest_csv(_read(SAMPLE)))["IP Addr"]
    assert anonymous.confidence < named.confidence


# --- 4. values contradicting a header ----------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "fitting", "contradicting"),
    [
        pytest.param("IP Address", _fact("ip"), _fact("backup"), id="ip-vs-words"),
        pytest.param("Operating System", _fact("os"), _fact("cpus"), id="os-vs-integers"),
        pytest.param("Hostname", _fact("fqdn"), _fact("gb"), id="hostname-vs-integers"),
    ],
)
def test_contradicting_values_lower_the_confidence(
    header: str, fitting: Value, contradicting: Value
) -> None:
    def mapped(values: Value) -> FieldMapping:
        columns = [("Asset Name", _fact("asset_name")), (header, values)]
        return _by_column(_suggest_csv(_generated(columns, rows=30, seed=11)))[header]

    good, bad = mapped(fitting), mapped(contradicting)
    assert good.target_attribute == bad.target_attribute
    assert bad.confidence < good.confidence - 0.2, (good, bad)
    assert "look like it" in bad.reason
    assert "look like it" not in good.reason


# --- 5. nothing forced ------------------------------------------------------------------------


def test_a_column_nothing_points_to_stays_unmapped() -> None:
    columns = [
        ("Hostname", _fact("fqdn")),
        ("Backup Status", _fact("backup")),
        ("Memory", _SIZE_GB),
    ]
    m = _by_column(_suggest_csv(_generated(columns, rows=30, seed=5)))["Backup Status"]
    assert m.state == State.UNMAPPED
    assert m.target_attribute is None
    assert m.confidence == 0.0
    assert m.alternatives == ()


def test_an_empty_column_is_unmapped_whatever_its_header() -> None:
    blank: Value = lambda _r: ""  # noqa: E731
    columns = [
        ("Asset Name", _fact("asset_name")),
        ("Hostname", blank),
        ("IP Address", _fact("ip")),
    ]
    by_column = _by_column(_suggest_csv(_generated(columns, rows=30, seed=9)))
    m = by_column["Hostname"]
    assert m.state == State.UNMAPPED
    assert m.target_attribute is None
    assert m.alternatives == ("hostname",)
    assert "empty" in m.reason
    # Nothing else takes hostname in its place either.
    assert all(other.target_attribute != "hostname" for other in by_column.values())


@pytest.mark.parametrize(
    ("first", "second"),
    [("Hostname", "Host Name"), ("Host Name", "Hostname"), ("HOST_NAME", "Host Name")],
)
def test_two_equally_fitting_columns_never_both_get_the_attribute(first: str, second: str) -> None:
    columns = [
        ("Asset Name", _fact("asset_name")),
        (first, _fact("fqdn")),
        (second, _fact("fqdn")),
        ("IP Address", _fact("ip")),
    ]
    by_column = _by_column(_suggest_csv(_generated(columns, rows=30, seed=13)))
    pair = [by_column[first], by_column[second]]
    winners = [m for m in pair if m.state == State.SUGGESTED]
    assert len(winners) <= 1, pair
    assert all(m.target_attribute == "hostname" for m in winners)
    others = [m for m in pair if m not in winners]
    assert others and all(m.state in (State.AMBIGUOUS, State.UNMAPPED) for m in others), pair
    # The fit is equally good, so a person is asked rather than told.
    assert any(m.state == State.AMBIGUOUS for m in pair), pair
    assert all("hostname" in m.reason for m in pair)


# --- 6. the real ServiceNow-style export ------------------------------------------------------


def test_real_servicenow_export() -> None:
    text = _read(REAL_EXPORT)
    profiles = profile_csv(text)
    mappings = suggest(profiles)
    _assert_well_formed(mappings)
    by_column = _by_column(mappings)
    for header, attr in {
        "serv_os": "operating_system",
        "serv_name": "hostname",
        "serv_location": "location",
        "serv_u_environment": "environment",
    }.items():
        m = by_column[header]
        assert (m.target_attribute, m.state) == (attr, State.SUGGESTED), m

    empty = {p.name for p in profiles if p.inferred_type == "empty"}
    # The export's IP, FQDN and business-name columns carry no values at all.
    assert {"serv_ip_address", "serv_fqdn", "bus_name"} <= empty
    for name in empty:
        m = by_column[name]
        assert (m.state, m.target_attribute) == (State.UNMAPPED, None), m
    assert by_column["serv_ip_address"].alternatives == ("ip_address",)
    assert by_column["serv_fqdn"].alternatives == ("hostname",)
    # The export's only name column (bus_name is empty) names the asset too.
    assert by_column["serv_name"].also_targets == ("asset_name",)
    assert "asset_name" not in {
        t for m in mappings if m is not by_column["serv_name"] for t in m.usable_targets
    }


# --- 7. shape of the output -------------------------------------------------------------------


def _all_texts() -> list[str]:
    return [
        _read(SAMPLE),
        _read(INVENTORY),
        _read(REAL_EXPORT),
        _anonymous_columns_csv(),
        *(_mixed_file(i)[1] for i in range(3)),
    ]


@pytest.mark.parametrize("text", _all_texts(), ids=lambda t: t.split("\n", 1)[0][:40])
def test_one_mapping_per_column_in_column_order(text: str) -> None:
    header = next(csv.reader(io.StringIO(text)))
    profiles = profile_csv(text)
    mappings = suggest(profiles)
    assert [m.source_column for m in mappings] == header
    assert [m.position for m in mappings] == list(range(1, len(header) + 1))
    # Column order comes from the positions, not from the order profiles arrive in.
    assert suggest(list(reversed(profiles))) == mappings
