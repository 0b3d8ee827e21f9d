"""Units from headers and values, plausibility per attribute, the approval-gate check."""

from __future__ import annotations

import pytest

from discovery_svc.domain.cleansing import RowCleanser
from discovery_svc.normalize.units import (
    column_unit,
    header_unit,
    implausibility,
    normalize_memory_gb,
)


@pytest.mark.parametrize(
    ("header", "unit"),
    [
        ("RAM (MB)", "MB"),
        ("RAM MB", "MB"),
        ("RAM_MB", "MB"),
        ("ram-mb", "MB"),
        ("Mem_GB", "GB"),
        ("MemGB", "GB"),
        ("MemoryMB", "MB"),
        ("memoryMb", "MB"),
        ("Memory (GiB)", "GB"),
        ("Memory [MiB]", "MB"),
        ("MemoryGiB", "GB"),
        ("Disk TB", "TB"),
        ("Disk (TB)", "TB"),
        ("Total Disk Space (GB)", "GB"),
        ("RAM in MB", "MB"),
        ("Memory in megabytes", "MB"),
        ("Megabytes of RAM", "MB"),
        ("RAM (M)", "MB"),
        ("Storage {G}", "GB"),
        ("Provisioned MiB", "MB"),
        ("KB of RAM", "KB"),
    ],
)
def test_header_unit(header: str, unit: str) -> None:
    assert header_unit(header) == unit


@pytest.mark.parametrize(
    "header",
    ["RAM", "Memory", "mem", "Disk", "Memory Size", "Megaman", "Gigabit NIC", "Team", "M"],
)
def test_header_without_a_unit(header: str) -> None:
    assert header_unit(header) is None


def test_header_naming_two_units_names_none() -> None:
    assert header_unit("RAM MB or GB") is None


def test_column_unit_from_values_when_the_header_names_none() -> None:
    mb = column_unit("memory_gb", "RAM", ["32768", "16384", "8192", "65536", "4096"])
    assert mb.unit == "MB" and mb.problem is None and "plausible as MB" in mb.reason
    gb = column_unit("memory_gb", "RAM", ["16", "8", "32", "4", "64"])
    assert gb.unit == "GB" and gb.problem is None
    # Values with their own unit say nothing about the bare numbers' unit.
    assert column_unit("memory_gb", "RAM", ["16 GB", "8 GB"]).unit == "GB"
    storage = column_unit("storage_gb", "Disk", ["512000", "1024000", "204800"])
    assert storage.unit == "MB"


def test_column_unit_header_wins_but_implausible_values_are_a_problem() -> None:
    named = column_unit("memory_gb", "RAM MB", ["32768", "16384"])
    assert named.unit == "MB" and named.problem is None
    wrong = column_unit("memory_gb", "RAM GB", ["32768", "16384", "65536"])
    assert wrong.unit == "GB"
    assert wrong.problem is not None and "implausible" in wrong.problem
    assert "RAM GB" in wrong.problem


def test_column_unit_implausible_in_every_scale() -> None:
    odd = column_unit("memory_gb", "RAM", ["5000000", "6000000"])
    assert odd.problem is not None and "implausible" in odd.problem


@pytest.mark.parametrize(
    ("raw", "unit", "expected"),
    [
        ("32768", "MB", 32.0),
        ("16", "GB", 16.0),
        ("0.5", "GB", 0.5),
        ("12 TB", "GB", 12288.0),
        ("64 MB", "GB", 0.062),
        ("16 GB RAM", "MB", 16.0),
        ("16GB memory", "GB", 16.0),
        ("8192 MB Total", "GB", 8.0),
    ],
)
def test_plausible_memory(raw: str, unit: str, expected: float) -> None:
    assert normalize_memory_gb(raw, default_unit=unit) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "unit"),
    [("32768", "GB"), ("20000 GB", "MB"), ("1 PB", "GB"), ("12", "MB"), ("0.01", "GB")],
)
def test_implausible_memory_is_an_issue(raw: str, unit: str) -> None:
    value, problem = normalize_memory_gb(raw, default_unit=unit)
    assert value is None and problem is not None and problem.startswith("implausible")


def test_row_cleanser_stores_no_implausible_size_or_count() -> None:
    cleanser = RowCleanser({0: "memory_gb", 1: "storage_gb", 2: "cpu_cores"})
    result = cleanser.cleanse(["32768", "20 PB", "4096"])
    assert "memory_gb" not in result.values
    assert "storage_gb" not in result.values
    assert "cpu_cores" not in result.values
    assert [i.attribute for i in result.issues] == ["memory_gb", "storage_gb", "cpu_cores"]
    fine = RowCleanser({0: "memory_gb"}, memory_unit_hint="MB").cleanse(["32768"])
    assert fine.values["memory_gb"] == 32.0 and not fine.issues


@pytest.mark.parametrize(
    ("attribute", "header", "samples", "flagged"),
    [
        ("memory_gb", "RAM GB", ["32768", "16384"], True),
        ("memory_gb", "RAM", ["32768", "16384"], False),  # plausible as MB
        ("memory_gb", "RAM", ["5000000", "6000000"], True),
        ("storage_gb", "Disk (GB)", ["100", "250"], False),
        ("cpu_cores", "CPUs", ["4096", "8192"], True),
        ("cpu_cores", "vCPU", ["4", "8"], False),
        ("hostname", "Host", ["a", "b"], False),
        ("memory_gb", "RAM", [], False),
    ],
)
def test_implausible_columns_for_the_approval_gate(
    attribute: str, header: str, samples: list[str], flagged: bool
) -> None:
    problem = implausibility(attribute, header, samples)
    assert (problem is not None) == flagged
    if problem is not None:
        assert problem.startswith(f"{attribute}:") and header in problem
