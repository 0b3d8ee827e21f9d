"""UploadImportData stores each block with one statement that PostgreSQL splits: the stored
rows, row numbers and line numbers are exactly what the per-record parser reads from the file,
whatever the values hold (the block separators, quoted delimiters and newlines, multi-byte
characters) and wherever the chunks end."""

from __future__ import annotations

import random
import uuid

import pytest

from discovery_svc.domain.csv_stream import CsvStreamParser, Quarantined, Row
from tests.support import Stack, fetch, new_tenant


@pytest.fixture
async def discovery(stack: Stack) -> Stack:
    await stack.start_discovery()
    return stack


def mixed_file(rows: int) -> bytes:
    """Mostly plain lines (stored as the block's own text), with runs of lines the block path
    hands to the per-record parser (stored packed with separators chosen per block)."""
    rng = random.Random(7)
    tricky = [
        '"a, b","line one\nline ""two""",x\n',
        "x\x1ey,\x1fz,\ue000\n",
        "Renée,東京,😀\n",
        " , ,\n",
        "ragged\n",
        "\n",
        "caf\xe9,crlf,end\r\n",
        ",empty first,ok\n",
    ]
    lines = ["Name,Note,Extra\n"]
    for i in range(rows):
        # Clustered, so that the blocks before and after are plain.
        if 8000 <= i < 10_000 and rng.random() < 0.1:
            lines.append(rng.choice(tricky))
        else:
            lines.append(f"srv{i:06d}.corp.example.com,10.{i >> 8 & 255}.{i & 255}.1,prod\n")
    return "".join(lines).encode()


def expected(data: bytes) -> tuple[list[tuple[int, list[str]]], list[tuple[int, str, str]]]:
    parser = CsvStreamParser()
    items: list[Row | Quarantined] = parser.feed(data) + parser.close()
    rows = [(r.line_number, r.values) for r in items if isinstance(r, Row)]
    quarantined = [
        (q.line_number, q.reason, q.excerpt) for q in items if isinstance(q, Quarantined)
    ]
    return rows, quarantined


@pytest.mark.parametrize("chunk_size", [997, 256 * 1024])
async def test_stored_rows_equal_the_per_record_parse(discovery: Stack, chunk_size: int) -> None:
    data = mixed_file(20_000)
    rows, quarantined = expected(data)
    import_id = uuid.uuid4()
    imp = await discovery.upload(new_tenant(), data, import_id=import_id, chunk_size=chunk_size)
    assert (imp.row_count, imp.quarantined_row_count) == (len(rows), len(quarantined))
    stored = await fetch(
        discovery.database_url,
        "SELECT r.row_number, r.line_number, r.values FROM discovery.raw_records r"
        " JOIN discovery.imports i ON i.id = r.import_id WHERE i.public_id = $1"
        " ORDER BY r.row_number",
        import_id,
    )
    assert [s["row_number"] for s in stored] == list(range(1, len(rows) + 1))
    assert [(s["line_number"], list(s["values"])) for s in stored] == rows
    stored_q = await fetch(
        discovery.database_url,
        "SELECT q.line_number, q.reason, q.excerpt FROM discovery.quarantined_rows q"
        " JOIN discovery.imports i ON i.id = q.import_id WHERE i.public_id = $1"
        " ORDER BY q.line_number",
        import_id,
    )
    assert [tuple(q) for q in stored_q] == quarantined
    shown = [(q.line_number, q.reason, q.excerpt) for q in imp.quarantined_rows]
    assert shown == quarantined[: len(shown)] and len(shown) == min(100, len(quarantined))
