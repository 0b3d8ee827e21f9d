"""RowCleanser.cleanse_batch: the bytes of row-by-row cleansing, picklable both ways so that the
cleansing phase can run batches in worker processes; and the normalisers' fast paths give what
the full parsers give."""

from __future__ import annotations

import asyncio
import csv
import io
import ipaddress
import json
import random
import subprocess
import sys
import time
from collections.abc import Sequence

import pytest

from discovery_svc.adapters.cleansing_pool import CleansingPool
from discovery_svc.domain import mapping_set
from discovery_svc.domain.cleansing import CleansedBatch, RowCleanser, to_json, with_copies
from discovery_svc.normalize import network
from discovery_svc.normalize.text import present, quote
from tests.benchmarks.__main__ import cmdb_rows
from tests.support import ROOT

CORPUS = sorted((ROOT / "tests" / "corpus").glob("*.csv"))
# Every attribute a column can feed, companions included (read by their attribute's step).
TARGETS = sorted(mapping_set.TARGET_ATTRIBUTES)


def _corpus_rows(path: object) -> list[list[str]]:
    """A corpus file's non-blank rows, split at the delimiter its header has most of (some
    are European exports with ';', some start with a blank line)."""
    with open(str(path), newline="", encoding="utf-8-sig") as f:
        content = f.read()
    header = next(line for line in content.splitlines() if line.strip())
    delimiter = max(",;\t|", key=header.count)
    return [row for row in csv.reader(io.StringIO(content), delimiter=delimiter) if any(row)]


def _mappings(width: int, seed: int) -> tuple[dict[int, str], int, list[int]]:
    """A mapping of ``width`` columns to distinct attributes, some custom, and two columns
    feeding a second attribute (the copies appended after the row)."""
    rng = random.Random(seed)
    targets = rng.sample(TARGETS, len(TARGETS))
    columns: dict[int, str] = {}
    for index in range(width):
        columns[index] = targets.pop() if targets and rng.random() < 0.8 else f"custom:c{index}"
    copies = [rng.randrange(width) for _ in range(2)] if width > 1 else []
    for k in range(len(copies)):
        columns[width + k] = targets.pop() if targets else f"custom:copy{k}"
    return columns, width, copies


def _row_by_row(
    cleanser: RowCleanser, rows: Sequence[tuple[int, Sequence[str]]], width: int, copies: list[int]
) -> CleansedBatch:
    """What the cleansing phase wrote before batches: cleanse() per row, then to_json."""
    out: list[tuple[int, str]] = []
    issues: list[tuple[int, str, str, str]] = []
    for number, values in rows:
        if copies:
            values = with_copies(values, width, copies)
        cleansed = cleanser.cleanse(values)
        out.append((number, to_json(cleansed.values)))
        issues.extend((number, i.attribute, i.value, i.problem) for i in cleansed.issues)
    return CleansedBatch(out, issues)


def _cleansers() -> list[tuple[RowCleanser, list[tuple[int, list[str]]], int, list[int]]]:
    cases = []
    for path in CORPUS:
        header, *body = _corpus_rows(path)
        rows = list(enumerate(body, start=1))
        for seed in range(6):
            columns, width, copies = _mappings(len(header), seed)
            try:
                cleanser = RowCleanser(columns, memory_unit_hint="MB" if seed % 2 else None)
            except ValueError:
                continue  # a draw that maps a companion without its attribute is fine to skip
            cases.append((cleanser, rows, width, copies))
    return cases


def test_a_batch_is_row_by_row_cleansing_byte_for_byte() -> None:
    cases = _cleansers()
    assert len(cases) >= len(CORPUS)
    for cleanser, rows, width, copies in cases:
        assert cleanser.cleanse_batch(rows, width=width, copies=copies) == _row_by_row(
            cleanser, rows, width, copies
        )


def test_the_stored_json_is_the_standard_librarys_value() -> None:
    # The rows are stored as jsonb, so spacing and escapes may differ from json.dumps (orjson
    # writes UTF-8 where json.dumps writes \\u escapes), the value may not.
    non_ascii = 0
    for cleanser, rows, width, copies in _cleansers():
        for number, values in rows:
            cleansed = cleanser.cleanse(with_copies(values, width, copies) if copies else values)
            stored = to_json(cleansed.values)
            assert json.loads(stored) == json.loads(json.dumps(cleansed.values)), (number, stored)
            non_ascii += not stored.isascii()
    assert non_ascii, "no cleansed value outside ASCII: the corpus no longer tests escapes"


async def test_the_phase_pool_cleanses_as_row_by_row_in_this_process() -> None:
    header, *body = (
        row for row in csv.reader(b"".join(cmdb_rows(3000)).decode().splitlines()) if row
    )
    columns = {
        0: "asset_name",
        1: "asset_type",
        2: "hostname",
        3: "ip_address",
        4: "operating_system",
        5: "memory_gb",
        6: "cpu_cores",
        7: "environment",
        8: "application_name",
        9: "depends_on",
        10: "business_criticality",
    }
    cleanser = RowCleanser(columns)
    rows = list(enumerate(body, start=1))
    expected = _row_by_row(cleanser, rows, len(header), [7])
    for processes in (2, 0):
        pool = CleansingPool(cleanser, width=len(header), copies=[7], processes=processes)
        # Pages in flight together, as the phase has them: the answers keep their pages.
        batches = await asyncio.gather(pool.cleanse(rows[:1500]), pool.cleanse(rows[1500:]))
        assert (
            CleansedBatch(
                [r for b in batches for r in b.rows], [i for b in batches for i in b.issues]
            )
            == expected
        ), processes


_ORPHAN = """
import asyncio, os, sys
from discovery_svc.adapters.cleansing_pool import CleansingPool
from discovery_svc.domain.cleansing import RowCleanser

async def main() -> None:
    pool = CleansingPool(RowCleanser({0: "hostname"}), width=1, copies=(), processes=2)
    await asyncio.gather(*(pool.cleanse([(1, ["web01"])]) for _ in range(8)))
    print(" ".join(str(p) for p in pool._pool._processes), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_pool_processes_go_when_their_phase_process_is_sigkilled() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN], stdout=subprocess.PIPE, cwd=ROOT, text=True
    )
    assert parent.stdout is not None
    children = [int(p) for p in parent.stdout.readline().split()]
    assert children and all(_alive(p) for p in children)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in children)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


# -- the fast paths against the full parsers --------------------------------------------------


def _ip_reference(stripped: str) -> tuple[str | None, str | None]:
    address, slash, prefix = stripped.partition("/")
    try:
        return str(ipaddress.ip_interface(network._unpad_ipv4(address) + slash + prefix).ip), None
    except ValueError:
        return None, f"invalid IP address {quote(stripped)}"


def _looks_like_ip_reference(s: str) -> bool:
    try:
        ipaddress.ip_address(network._unpad_ipv4(s.partition("/")[0]))
    except ValueError:
        return False
    return True


def _cells() -> list[str]:
    rng = random.Random(9)
    cells = {cell.strip() for path in CORPUS for row in _corpus_rows(path) for cell in row}
    for _ in range(5000):
        octets = [
            rng.choice(["0", "00", "007", "255", "256", "999", "1000", str(rng.randrange(300))])
            for _ in range(4)
        ]
        cells.add(".".join(octets))
        cells.add(".".join(octets[:3]))
        cells.add(".".join(octets) + rng.choice(["/24", "/33", ".", "x", ":", "%1", ""]))
        cells.add(
            "".join(rng.choice("0123456789.:abcdefx/%٣ ") for _ in range(rng.randrange(1, 16)))
        )
    return sorted(c for c in cells if c)


def _hostname_reference(raw: str) -> tuple[network.HostInfo | None, str | None]:
    """network.hostname as it was before its shortcuts."""
    stripped = present(raw)
    if stripped is None:
        return None, None
    name = stripped.lower().removesuffix(".")
    if _looks_like_ip_reference(name):
        return None, f"looks like an IP address, not a host name {quote(stripped)}"
    if any(c.isspace() for c in name):
        return None, f"host name contains spaces {quote(stripped)}"
    labels = name.split(".")
    if len(name) > 253 or not all(network._LABEL.fullmatch(label) for label in labels):
        return None, f"invalid host name {quote(stripped)}"
    if len(labels) > 1 and all(len(label) == 1 for label in labels):
        return None, None
    return network.HostInfo(labels[0], ".".join(labels[1:]), name), None


@pytest.mark.parametrize("check", ["ip", "looks_like_ip", "hostname"])
def test_the_shortcuts_answer_as_the_parsers(check: str) -> None:
    for cell in _cells():
        if check == "hostname":
            for raw in (cell, f"{cell}.", f"a.{cell}", f"{cell}\u00a0x", "a.b.c", "a.bb"):
                assert network.hostname.__wrapped__(raw) == _hostname_reference(raw), raw
        elif check == "ip":
            if network._SEVERAL.search(cell) is None and present(cell) == cell:
                assert network.ip.__wrapped__(cell) == _ip_reference(cell), cell
        else:
            lowered = cell.lower()
            assert network._looks_like_ip(lowered) == _looks_like_ip_reference(lowered), cell
