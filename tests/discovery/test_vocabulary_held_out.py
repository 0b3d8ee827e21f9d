"""Classes of defect the held-out exports (SCCM, PowerCLI, a German Excel list) showed, each
tested as a class: the vocabularies (``discovery_svc/vocab/*.json``) and the normalisers that
apply them. No database."""

from __future__ import annotations

import pytest

from discovery_svc import vocab
from discovery_svc.domain import identity
from discovery_svc.domain.cleansing import (
    PLACEHOLDER_NAME,
    OsInfo,
    RowCleanser,
    normalize_asset_type,
    normalize_criticality,
    normalize_environment,
    normalize_hostname,
    normalize_ip,
    normalize_os,
    normalize_text,
)
from discovery_svc.domain.mapping import header_words, suggest
from discovery_svc.domain.mapping_set import State
from discovery_svc.normalize.asset_types import guess_asset_type
from discovery_svc.normalize.os import is_client_os, merge_version
from discovery_svc.normalize.text import present
from tests.discovery.profiling import profile_csv

# ----------------------------------------------------- 1. Windows NT kernel versions, guests


@pytest.mark.parametrize(
    ("raw", "name", "version"),
    [
        # SCCM's "Operating System Name and Version": edition and kernel version.
        ("Microsoft Windows NT Workstation 5.1", "Windows", "XP"),
        ("Microsoft Windows NT Workstation 6.0", "Windows", "Vista"),
        ("Microsoft Windows NT Workstation 6.1", "Windows", "7"),
        ("Microsoft Windows NT Workstation 6.2", "Windows", "8"),
        ("Microsoft Windows NT Workstation 6.3", "Windows", "8.1"),
        ("Microsoft Windows NT Workstation 10.0", "Windows", "10"),
        ("Microsoft Windows NT Workstation 10.0 (Tablet Edition)", "Windows", "10"),
        ("Microsoft Windows NT Server 5.2", "Windows Server", "2003"),
        ("Microsoft Windows NT Server 6.0", "Windows Server", "2008"),
        ("Microsoft Windows NT Server 6.1", "Windows Server", "2008 R2"),
        ("Microsoft Windows NT Server 6.1 Service Pack 1", "Windows Server", "2008 R2 SP1"),
        ("Microsoft Windows NT Server 6.2", "Windows Server", "2012"),
        ("Microsoft Windows NT Advanced Server 6.3", "Windows Server", "2012 R2"),
        ("Microsoft Windows NT Datacenter Server 6.3", "Windows Server", "2012 R2"),
        # 10.0 is Server 2016, 2019, 2022 and 2025: only a build tells which.
        ("Microsoft Windows NT Server 10.0", "Windows Server", ""),
        ("Microsoft Windows NT Advanced Server 10.0", "Windows Server", ""),
        ("Microsoft Windows NT Server 10.0.14393", "Windows Server", "2016"),
        ("Microsoft Windows NT Server 10.0.17763.5458", "Windows Server", "2019"),
        ("Microsoft Windows NT Server 10.0 (20348)", "Windows Server", "2022"),
        ("Microsoft Windows NT Server 10.0 Build 26100", "Windows Server", "2025"),
        ("Windows Server Standard 10.0.17763", "Windows Server", "2019"),
        # A semi-annual server build is no named release.
        ("Microsoft Windows NT Server 10.0.18363", "Windows Server", ""),
        # Windows 11 is kernel 10.0 from build 22000, and still "Windows 10" in the registry.
        ("Microsoft Windows NT Workstation 10.0 (22631)", "Windows", "11"),
        ("Microsoft Windows NT Workstation 10.0.19045", "Windows", "10"),
        ("Windows 10 Enterprise 10.0.22631", "Windows", "11"),
        ("Windows 10 Enterprise 10.0.19045", "Windows", "10"),
        # No edition: the kernel is the version, whole ("10.0", never "1").
        ("Windows NT 10.0", "Windows NT", "10.0"),
        ("Windows NT 6.1", "Windows NT", "6.1"),
        ("Windows NT 4.0", "Windows NT", "4.0"),
        # An edition with a kernel no table names keeps both.
        ("Microsoft Windows NT Workstation 4.0", "Windows NT Workstation", "4.0"),
        ("Microsoft Windows NT Server 4.0", "Windows NT Server", "4.0"),
    ],
)
def test_windows_nt_kernel_and_edition_name_the_release(raw: str, name: str, version: str) -> None:
    assert normalize_os(raw) == (OsInfo("windows", name, version), None)


@pytest.mark.parametrize(
    "display",
    [
        "Windows",
        "Windows 7",
        "Windows 11",
        "Windows Server",
        "Windows Server 2012 R2",
        "Windows NT 10.0",
        "Windows NT Workstation 4.0",
    ],
)
def test_an_nt_result_reads_back_as_itself(display: str) -> None:
    info, problem = normalize_os(display)
    assert problem is None and info is not None and info.display == display


@pytest.mark.parametrize(
    ("raw", "family", "name", "version"),
    [
        ("web-004:Microsoft Windows Server 2019 (64-bit)", "windows", "Windows Server", "2019"),
        # Digits of the VM's name are no version, not even a server year.
        ("srv-2012:Microsoft Windows Server 2019 (64-bit)", "windows", "Windows Server", "2019"),
        ("sql-000:Red Hat Enterprise Linux 8 (64-bit)", "linux", "RHEL", "8"),
        ("app-002:Ubuntu Linux (64-bit)", "linux", "Ubuntu", ""),
        ("db01.corp.example:CentOS 7 (64-bit)", "linux", "CentOS", "7"),
    ],
)
def test_a_vmware_guest_drops_the_vm_name(raw: str, family: str, name: str, version: str) -> None:
    assert normalize_os(raw) == (OsInfo(family, name, version), None)


def test_a_vmware_guest_without_an_os_is_no_os() -> None:
    assert normalize_os("sql-007:") == (None, None)
    assert normalize_os("sql-007: ") == (None, None)


def test_a_colon_before_no_os_is_still_reported() -> None:
    assert normalize_os("IOS:15.2") == (None, 'unrecognised operating system "IOS:15.2"')


# ------------------------------------------------------------- 2. a desktop OS is a client


@pytest.mark.parametrize(
    "raw",
    [
        "Microsoft Windows NT Workstation 6.1",
        "Microsoft Windows NT Workstation 10.0",
        "Microsoft Windows NT Workstation 4.0",
        "Windows 7 Enterprise",
        "Windows 8.1 Pro",
        "Windows 10 Enterprise",
        "Windows 11 Pro",
        "Windows XP SP3",
        "macOS 14.2",
        "Mac OS X 10.15",
    ],
)
def test_a_desktop_os_guesses_an_end_user_computer(raw: str) -> None:
    info, _ = normalize_os(raw)
    assert info is not None and is_client_os(info.display)
    cleanser = RowCleanser({0: "hostname", 1: "operating_system"})
    row = cleanser.cleanse(["pc0001", raw])
    assert row.values["asset_type_guess"] == "end_user_computer"
    reason = row.values["asset_type_reason"]
    assert isinstance(reason, str) and "desktop operating system" in reason
    assert info.display in reason


@pytest.mark.parametrize(
    "raw",
    [
        "Microsoft Windows NT Server 10.0",
        "Microsoft Windows NT Advanced Server 6.3",
        "Windows NT 6.1",  # no edition: 7 or 2008 R2, so no client
        "Windows Server 2019",
        "Windows",
        "RHEL 8",
        "VMware ESXi 7.0",
    ],
)
def test_a_server_or_unknown_os_still_guesses_a_server(raw: str) -> None:
    row = RowCleanser({0: "hostname", 1: "operating_system"}).cleanse(["srv0002", raw])
    assert row.values["asset_type_guess"] == "server"


def test_a_type_column_outranks_a_desktop_os() -> None:
    cleanser = RowCleanser({0: "hostname", 1: "operating_system", 2: "asset_type"})
    row = cleanser.cleanse(["lab01", "Windows 10 Enterprise", "Server"])
    assert row.values["asset_type"] == "server" and "asset_type_guess" not in row.values


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # Name hints: whole words of host-like names, only without an OS.
        ({"hostname": "sql-007"}, "database"),
        ({"hostname": "proddb01"}, "server"),
        ({"asset_name": "Microsoft SQL Server 2005 Books Online"}, "other"),
        (
            {"hostname": "db01", "os_family": "windows", "operating_system": "Windows 10"},
            "end_user_computer",
        ),
        ({"hostname": "db01", "os_family": "linux", "operating_system": "RHEL 8"}, "server"),
    ],
)
def test_name_hints_keep_their_rules(values: dict[str, object], expected: str) -> None:
    assert guess_asset_type(values)[0] == expected


# ---------------------------------------------------- 3. placeholders in other languages


PLACEHOLDERS = [
    "k.A.",
    "K.A.",
    "k. A.",
    "k.a",
    "k/A",
    "keine Angabe",
    "Keine Angaben",
    "unbekannt",
    "n.v.",
    "N.V.",
    "nicht vorhanden",
    "./.",
    "?",
    "??",
    "???",
    "none",
    "NULL",
    "(leer)",
    "leer",
    "inconnu",
    "desconocido",
    "sconosciuto",
]


@pytest.mark.parametrize("raw", PLACEHOLDERS)
def test_other_languages_placeholders_are_missing_values(raw: str) -> None:
    assert present(raw) is None
    assert normalize_os(raw) == (None, None)
    assert normalize_ip(raw) == (None, None)
    assert normalize_hostname(raw) == (None, None)  # "k.A." is no FQDN "k.a"
    assert normalize_environment(raw) == (None, None)
    assert normalize_criticality(raw) == (None, None)
    assert normalize_asset_type(raw) == (None, None)
    assert normalize_text(raw) == (None, None)
    assert identity.is_placeholder(raw)


def test_ka_is_a_placeholder_name_but_a_real_value_elsewhere() -> None:
    # "KA" is also a site code (Karlsruhe): kept as a location, never an asset's name.
    assert present("KA") == "KA" and normalize_text("KA") == ("KA", None)
    assert identity.is_placeholder("ka") and identity.is_placeholder("KA")
    assert "ka" not in {v.casefold() for v in vocab.load("placeholders")["values"]}


@pytest.mark.parametrize(
    "name",
    [
        "x64 Unknown Computer (x64 Unknown Computer)",
        "x86 Unknown Computer (x86 Unknown Computer)",
        "Provisioning Device (Provisioning Device)",
        "ARM64 Unknown Computer (ARM64 Unknown Computer)",
        "x64 Unknown Computer",
        "Unknown (Unknown)",
    ],
)
def test_sccm_pseudo_records_identify_nothing(name: str) -> None:
    assert identity.is_placeholder(name)
    # The SQL compares normalised names with the same set.
    assert identity.normalize_name(name) in identity.placeholder_names()


@pytest.mark.parametrize("name", ["web01 (web01)", "PC0001", "Unknown Computer Lab 2", "kaffee01"])
def test_real_names_stay_names(name: str) -> None:
    assert not identity.is_placeholder(name)


def test_a_placeholder_name_is_reported_not_a_host() -> None:
    row = RowCleanser({0: "hostname", 1: "ip_address"}).cleanse(["k.A.", "k.A."])
    assert "hostname" not in row.values and "ip_address" not in row.values
    assert not row.issues  # the inventory reports the placeholder, with the row's identity
    assert row.values[PLACEHOLDER_NAME] == "k.A."


# --------------------------------------------------- 4. German and other languages' words


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("physisch", "server"),
        ("Physikalisch", "server"),
        ("physischer Server", "server"),
        ("virtuell", "virtual_machine"),
        ("Virtueller Server", "virtual_machine"),
        ("virtuelle Maschine", "virtual_machine"),
        ("VM", "virtual_machine"),
        ("machine virtuelle", "virtual_machine"),
        ("servidor virtual", "virtual_machine"),
        ("Arbeitsplatz-PC", "end_user_computer"),
    ],
)
def test_asset_types_in_other_languages(raw: str, expected: str) -> None:
    assert normalize_asset_type(raw) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("PROD", "production"),
        ("Produktion", "production"),
        ("ABN", "uat"),
        ("Abnahme", "uat"),
        ("ENTW", "development"),
        ("Entwicklung", "development"),
        ("INT", "test"),
        ("Integration", "test"),
        ("TEST", "test"),
        ("REF", "staging"),
        ("QS", "qa"),
        ("Schulung", "training"),
        ("Recette", "uat"),
        ("Desarrollo", "development"),
    ],
)
def test_environments_in_other_languages(raw: str, expected: str) -> None:
    assert normalize_environment(raw) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("hoch", "high"), ("Mittel", "medium"), ("niedrig", "low"), ("geschäftskritisch", "critical")],
)
def test_criticalities_in_german(raw: str, expected: str) -> None:
    assert normalize_criticality(raw) == (expected, None)


def test_headers_with_umlauts_read_as_their_transliteration() -> None:
    # header_words transliterates: "Gerätetyp" reads as "geraetetyp", listed as such.
    assert header_words("Gerätetyp") == ["geraetetyp"]
    synonyms = vocab.load("header_synonyms")["synonyms"]
    assert "geraetetyp" in synonyms["asset_type"]
    assert "domaene" in synonyms["domain"]


@pytest.mark.parametrize(
    ("header", "attribute"),
    [
        ("Typ", "asset_type"),
        ("Servertyp", "asset_type"),
        ("Gerätetyp", "asset_type"),
        ("Geraetetyp", "asset_type"),
        ("Umgebung", "environment"),
        ("Servername", "hostname"),
        ("Betriebssystem", "operating_system"),
        ("IP-Adresse", "ip_address"),
        ("IP Adresse", "ip_address"),
        ("Arbeitsspeicher (GB)", "memory_gb"),
        ("Standort", "location"),
        ("Verantwortlich", "owner"),
        ("Seriennummer", "serial_number"),
        ("ProvisionedSpaceGB", "storage_gb"),
        ("Provisioned Space (GB)", "storage_gb"),
        ("Provisioned Storage", "storage_gb"),
        ("Resource Domain OR Workgroup", "domain"),
        ("Domain or Workgroup", "domain"),
        ("Domäne", "domain"),
    ],
)
def test_header_synonyms_in_other_languages_and_exports(header: str, attribute: str) -> None:
    words = header_words(header)
    core = [w for w in words if w not in {"gb", "mb"}]
    phrase = " ".join(core)
    synonyms = vocab.load("header_synonyms")["synonyms"]
    assert (
        phrase in synonyms[attribute]
        or phrase.replace(" ", "") in synonyms[attribute]
        or (phrase == attribute.replace("_", " "))
    ), (header, phrase)


def test_used_space_is_no_storage() -> None:
    synonyms = vocab.load("header_synonyms")["synonyms"]
    every = {p for phrases in synonyms.values() for p in phrases}
    assert not {"used space", "used", "in use", "used storage"} & every


def _german_list() -> str:
    rows = [
        "Servername,IP-Adresse,Typ,Betriebssystem,vCPU,RAM (GB),Umgebung,Verantwortlich,Standort",
    ]
    kinds = ["physisch", "virtuell", "VM"]
    stages = ["PROD", "ABN", "TEST", "ENTW"]
    systems = ["Windows Server 2019", "SLES 15 SP4", "RHEL 8", "k.A."]
    for i in range(40):
        rows.append(
            f"srv-ham-app{i:03},10.80.{i}.{i + 1},{kinds[i % 3]},{systems[i % 4]},{i % 8 + 1},"
            f"{2 ** (i % 6)},{stages[i % 4]},Team {i % 3},Hamburg"
        )
    return "\n".join(rows) + "\n"


def test_a_german_server_list_maps_every_column() -> None:
    mappings = {m.source_column: m for m in suggest(profile_csv(_german_list()))}
    expected = {
        "Servername": "hostname",
        "IP-Adresse": "ip_address",
        "Typ": "asset_type",
        "Betriebssystem": "operating_system",
        "vCPU": "cpu_cores",
        "RAM (GB)": "memory_gb",
        "Umgebung": "environment",
        "Verantwortlich": "owner",
        "Standort": "location",
    }
    assert {c: (m.target_attribute, m.state) for c, m in mappings.items()} == {
        c: (a, State.SUGGESTED) for c, a in expected.items()
    }


def test_a_german_row_cleanses_to_canonical_values() -> None:
    columns = {0: "hostname", 1: "asset_type", 2: "environment", 3: "operating_system"}
    cleanser = RowCleanser(columns)
    row = cleanser.cleanse(["srv-ham-db009", "physisch", "ABN", "k.A."])
    # The type column says server: the "db" in the name guesses nothing.
    assert row.values["asset_type"] == "server" and "asset_type_guess" not in row.values
    assert row.values["environment"] == "uat"
    assert "operating_system" not in row.values and not row.issues


# ------------------------------------------------ 5. a bare "Version" header and VM versions


def test_bare_version_stays_an_os_version_synonym() -> None:
    # SCCM's v_GS_OPERATING_SYSTEM.Version0 and hand-made lists' "Version" beside "OS" are OS
    # versions; the other spellings alone would miss them.
    synonyms = vocab.load("header_synonyms")["synonyms"]["os_version"]
    assert {"version", "os version", "operating system version"} <= set(synonyms)


@pytest.mark.parametrize("hardware", ["v19", "V8", "vmx-19", "vmx-07", "vmx13"])
def test_a_vm_hardware_version_does_not_replace_the_os_version(hardware: str) -> None:
    assert merge_version("2019", hardware) == "2019"
    assert merge_version("8", hardware) == "8"
    cleanser = RowCleanser({0: "hostname", 1: "operating_system", 2: "os_version"})
    row = cleanser.cleanse(["web-004", "web-004:Microsoft Windows Server 2019 (64-bit)", hardware])
    assert row.values["operating_system"] == "Windows Server 2019"
    assert row.values["os_version"] == "2019"


def test_a_real_os_version_column_still_completes_the_string() -> None:
    assert merge_version("15", "SP4") == "15 SP4"
    assert merge_version("8", "8.6") == "8.6"
