"""Value-kind patterns: match tables per kind, and PostgreSQL agreeing with Python on each."""

from __future__ import annotations

import re

import asyncpg
import pytest

from discovery_svc.domain.patterns import PATTERNS, Pattern, ValueKind, classify, pattern
from flowpair_shared import devstack
from flowpair_shared.db import asyncpg_dsn

KELVIN = "\u212a"  # folds to "k" under Unicode case folding, but not under ASCII rules

# kind → (values that must match, values that must not). Non-matches include the values other
# kinds are most easily confused with.
CASES: dict[ValueKind, tuple[tuple[str, ...], tuple[str, ...]]] = {
    ValueKind.INTEGER: (
        ("0", "42", "-7", "+15", "007", "1234567890123"),
        ("1,024", "12.5", "1.0", "1e5", "--1", "+", "4 2", "0x1F", "web01", "\u0661\u0662", ""),
    ),
    ValueKind.DECIMAL: (
        ("12.5", "-0.75", ".5", "+3.14", "0.0", "1.5E+03", "1e5", "2.5e-3"),
        ("42", "-7", "12.", "1,5", "10.0.0.1", "8.6.1", ".", "-.", "e5", "abc", "1.5e"),
    ),
    ValueKind.BOOLEAN: (
        ("true", "FALSE", "Yes", "no", "y", "N"),
        ("0", "1", "t", "f", "on", "yess", "truee", "not", "y e s"),
    ),
    ValueKind.DATE: (
        (
            "2024-01-31",
            "2024-01-31T10:00:00Z",
            "2024-01-31 10:00:00",
            "2024-01-31T10:00:00+02:00",
            "2024-01-31 10:00:00.123456+00",
            "2024-01-31t10:00",
            "31/01/2024",
            "01/31/2024",
            "31.01.2024",
            "31-01-2024",
            "2024/01/31",
            "2024.01.31",
            "1/5/2024",
            "01/31/2024 10:15 PM",
            "31-Jan-2024",
            "31 JAN 24",
            "31 January 2024",
            "Jan 31, 2024",
            "January 31 2024",
            "Sept. 5, 2024",
        ),
        (
            "2024-13-01",
            "2024-01-32",
            "2024-01-31T25:00:00",
            "13/13/2024",
            "32/01/2024",
            "31/01/24",
            "31.01.20245",
            "20240131",
            "Jan 2024",
            "31-Foo-2024",
            "12.5",
            "10.0.0.1",
            "web01",
        ),
    ),
    ValueKind.IPV4: (
        (
            "10.0.0.1",
            "192.168.1.254",
            "255.255.255.255",
            "0.0.0.0",
            "010.001.002.003",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "1.2.3.4/32",
            "1.2.3.4/0",
        ),
        (
            "256.1.1.1",
            "1.2.3.256",
            "999.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "10.0.0.1/33",
            "10.0.0.1/",
            "1.2.3.-4",
            "a.b.c.d",
            "12.5",
            "web01.corp.example.com",
            "::ffff:192.0.2.1",
        ),
    ),
    ValueKind.IPV6: (
        (
            "::1",
            "::",
            "fe80::1",
            "2001:db8::8a2e:370:7334",
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            "2001:DB8::1/64",
            "2001:db8::/32",
            "1::",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1:2:3:4:5:6::8",
            "fe80::1%eth0",
            "::ffff:192.0.2.1",
            "64:ff9b::192.0.2.33",
            "1:2:3:4:5:6:192.0.2.1",
        ),
        (
            "cafe",
            "dead:beef",
            "deadbeef",
            "10.0.0.1",
            "1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7::8",
            "1::2::3",
            "fe80:::1",
            "12345::1",
            "g::1",
            ":1",
            "1:",
            "2001:db8::/129",
            "::ffff:256.0.2.1",
            "1:2:3:4:5:6:7:192.0.2.1",
            "00:1a:2b:3c:4d:5e",
            "10:00:00",
        ),
    ),
    ValueKind.FQDN: (
        (
            "web01.corp.example.com",
            "db-1.acme.io",
            "WEB01.CORP.EXAMPLE.COM",
            "example.com",
            "host.example.com.",
            "a.bc",
            "1.2.3.com",
            "xn--bcher-kva.example",
            "a" * 63 + ".com",
            "a" * 64 + ".com",  # label lengths are not capped (see the module docstring)
        ),
        (
            "10.0.0.1",
            "12.5",
            "Windows 2012 R2",
            "web01",
            "-web.example.com",
            "web-.example.com",
            "web..example.com",
            ".example.com",
            "web_01.example.com",
            "example.c",
            "example.123",
            "example.com1",
            "user@example.com",
            "example.com..",
        ),
    ),
    ValueKind.HOSTNAME: (
        (
            "web01",
            "aaa0001",
            "SESKCOMMSRV",
            "a",
            "db-1",
            "1a",
            "01-web",
            "1--a",
            "Production",
            "a" * 63,
            "1" * 62 + "a",
            "a" + "1" * 62,
            "1-" * 40 + "a",  # not capped at 63 characters (see the module docstring)
        ),
        (
            "42",
            "0",
            "1-2-3",
            "-web",
            "web-",
            "web.example.com",
            "web_01",
            "web 01",
            "1-" * 40,
            KELVIN,
            "stra\u00dfe",
        ),
    ),
    ValueKind.OS: (
        (
            "Windows 2003 Standard",
            "Windows 2012 R2 Standard",
            "Oracle Linux 4/5/6 (64-bit)",
            "Microsoft Windows Server 2016 Standard",
            "Microsoft(R) Windows(R) Server 2019 Datacenter",
            "RHEL 8.6",
            "RHEL8",
            "Red Hat Enterprise Linux 8 (64-bit)",
            "RedHat 7",
            "Win2k19",
            "Win2k",
            "Win2012R2",
            "Win 10",
            "Win7",
            "WinXP",
            "Windows10",
            "Ubuntu 22.04 LTS",
            "ubuntu-22.04",
            "CentOS-7",
            "Debian GNU/Linux 12",
            "SLES 15 SP4",
            "openSUSE Leap 15.5",
            "Fedora 39",
            "Amazon Linux 2",
            "Rocky Linux 9.2",
            "Rocky 9",
            "AlmaLinux 8",
            "AIX 7.2",
            "IBM AIX",
            "Solaris 11",
            "SunOS 5.10",
            "HP-UX 11i v3",
            "FreeBSD 13.2",
            "VMware ESXi 7.0",
            "ESX 4.1",
            "macOS 14",
            "Mac OS X 10.15",
            "Other Linux (64-bit)",
            "Linux",
        ),
        (
            "Production",
            "Americas",
            "web01",
            "Aisles",
            "Aix-en-Provence",
            "Windowsill",
            "Win 100",
            "Winter",
            "Rocky",
            "Alma",
            "Darwin",
            "Chaos X",
            "Server 2016",
            "linuxbox",
            "",
        ),
    ),
    ValueKind.SIZE: (
        (
            "16 GB",
            "16GB",
            "16g",
            "16384 MB",
            "1.5 TB",
            "512 MiB",
            "2 GiB",
            "500 KB",
            "16 G",
            "64gb",
            "16Gi",
            "1,024 MB",
            "1,5 GB",
            "512 bytes",
            "2 gigabytes",
        ),
        ("16", "GB", "1.5", "16 GHz", "16 x", "16 GB RAM", "g16", "web01", "1,02 GB x"),
    ),
    ValueKind.EMAIL: (
        ("john.doe@example.com", "J.Smith+cmdb@corp.example.co.uk", "o'brien@acme.io"),
        (
            "john.doe",
            "@example.com",
            "john@",
            "john@example",
            "john@@example.com",
            "john doe@example.com",
            "web01.corp.example.com",
        ),
    ),
    ValueKind.UUID: (
        (
            "123e4567-e89b-12d3-a456-426614174000",
            "123E4567-E89B-12D3-A456-426614174000",
            "{123e4567-e89b-12d3-a456-426614174000}",
        ),
        (
            "123e4567e89b12d3a456426614174000",
            "123e4567-e89b-12d3-a456-42661417400",
            "123e4567-e89b-12d3-a456-4266141740000",
            "g23e4567-e89b-12d3-a456-426614174000",
            "{123e4567-e89b-12d3-a456-426614174000",
            "cafe",
        ),
    ),
}

MATCHES = [(kind, value) for kind, (yes, _) in CASES.items() for value in yes]
NON_MATCHES = [(kind, value) for kind, (_, no) in CASES.items() for value in no]

# Values that probe the dialect edges rather than any one kind: line breaks (ARE's "." and "$"
# versus Python's) and surrounding whitespace, which the regexes themselves do not strip.
EDGE_VALUES = ("web01\n", "a\nb", "Linux\nx", " web01", "10.0.0.1 ", "\t42", "", KELVIN + "b")
ALL_VALUES = sorted({v for _, v in MATCHES + NON_MATCHES} | set(EDGE_VALUES))


def _case_id(case: tuple[ValueKind, str]) -> str:
    return f"{case[0].value}:{case[1]!r}"


def test_every_kind_exactly_once() -> None:
    kinds = [p.kind for p in PATTERNS]
    assert sorted(k.value for k in kinds) == sorted(k.value for k in ValueKind)
    assert len(kinds) == len(set(kinds))
    assert all(pattern(k).kind is k for k in ValueKind)
    assert set(CASES) == set(ValueKind)


@pytest.mark.parametrize("p", PATTERNS, ids=lambda p: p.kind.value)
def test_source_is_anchored_and_portable(p: Pattern) -> None:
    assert p.pg_regex.startswith("^") and p.pg_regex.endswith("$")
    assert p.py_regex.pattern == p.pg_regex
    assert p.py_regex.flags & re.IGNORECASE
    # Constructs Python and PostgreSQL's ARE read differently, or one of them lacks.
    for token in (r"\d", r"\w", r"\s", r"\b", "(?=", "(?!", "(?<", "(?P"):
        assert token not in p.pg_regex, token
    # PostgreSQL rejects bounds above RE_DUP_MAX (255).
    for low, high in re.findall(r"\{([0-9]+)(?:,([0-9]+))?\}", p.pg_regex):
        assert int(high or low) <= 255


@pytest.mark.parametrize("case", MATCHES, ids=_case_id)
def test_matches(case: tuple[ValueKind, str]) -> None:
    kind, value = case
    assert pattern(kind).py_regex.fullmatch(value)
    assert kind in classify(value)


@pytest.mark.parametrize("case", NON_MATCHES, ids=_case_id)
def test_does_not_match(case: tuple[ValueKind, str]) -> None:
    kind, value = case
    assert not pattern(kind).py_regex.fullmatch(value)
    assert kind not in classify(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", set()),
        ("   ", set()),
        ("42", {ValueKind.INTEGER}),
        (" 42 ", {ValueKind.INTEGER}),
        ("12.5", {ValueKind.DECIMAL}),
        ("10.0.0.1", {ValueKind.IPV4}),
        ("\t10.0.0.0/8\n", {ValueKind.IPV4}),
        ("::1", {ValueKind.IPV6}),
        ("cafe", {ValueKind.HOSTNAME}),
        ("web01", {ValueKind.HOSTNAME}),
        ("web01.corp.example.com", {ValueKind.FQDN}),
        ("yes", {ValueKind.BOOLEAN, ValueKind.HOSTNAME}),
        ("Windows 2012 R2", {ValueKind.OS}),
        ("Win2k19", {ValueKind.OS, ValueKind.HOSTNAME}),
        ("16 GB", {ValueKind.SIZE}),
        ("2024-01-31", {ValueKind.DATE}),
        ("john.doe@example.com", {ValueKind.EMAIL}),
        # A UUID is also a valid single DNS label.
        ("123e4567-e89b-12d3-a456-426614174000", {ValueKind.UUID, ValueKind.HOSTNAME}),
    ],
)
def test_classify(value: str, expected: set[ValueKind]) -> None:
    assert classify(value) == expected


async def test_postgres_agrees_with_python() -> None:
    """Every pattern, run by PostgreSQL's ``~*``, gives Python's answer on every test value."""
    conn = await asyncpg.connect(asyncpg_dsn(devstack.embedded_admin_url("pg-test")))
    try:
        mismatches: list[tuple[str, str, bool, bool]] = []
        for p in PATTERNS:
            rows = await conn.fetch(
                "SELECT v, v ~* $1 AS hit FROM unnest($2::text[]) v", p.pg_regex, ALL_VALUES
            )
            assert len(rows) == len(ALL_VALUES)
            for row in rows:
                value: str = row["v"]
                in_python = p.py_regex.fullmatch(value) is not None
                if row["hit"] != in_python:
                    mismatches.append((p.kind.value, value, row["hit"], in_python))
    finally:
        await conn.close()
    assert mismatches == []
