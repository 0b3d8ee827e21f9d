"""CsvStreamParser's block path (feed_blocks/close_blocks) yields exactly what feed/close do.

The reference is the per-record path, which test_csv_stream.py pins down; here random files
full of the cases the block path must hand back to it (quotes, quoted newlines, CRs, blank and
empty rows, ragged, oversized, NUL and undecodable rows, multi-byte characters, the block
separators themselves as data) are split at random points and compared.
"""

from __future__ import annotations

import random

import pytest

from discovery_svc.domain.csv_stream import (
    CsvFormatError,
    CsvStreamParser,
    Quarantined,
    Row,
    RowBlock,
)

Parsed = tuple[list[tuple[int, list[str]]], list[Quarantined], list[str] | None, str | None, bool]


def reference(data: bytes, cuts: list[int], **options: int) -> Parsed | str:
    parser = CsvStreamParser(**options)
    items: list[Row | Quarantined] = []
    try:
        for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
            items += parser.feed(data[a:b])
        items += parser.close()
    except CsvFormatError as error:
        return str(error)
    rows = [(r.line_number, r.values) for r in items if isinstance(r, Row)]
    quarantined = [q for q in items if isinstance(q, Quarantined)]
    return rows, quarantined, parser.header, parser.delimiter, parser.had_bom


def blocks(data: bytes, cuts: list[int], **options: int) -> tuple[Parsed | str, list[RowBlock]]:
    parser = CsvStreamParser(**options)
    out: list[RowBlock] = []
    try:
        for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
            out += parser.feed_blocks(data[a:b])
        out += parser.close_blocks()
    except CsvFormatError as error:
        return str(error), out
    rows = [(r.line_number, r.values) for block in out for r in block.rows()]
    quarantined = [q for block in out for q in block.quarantined]
    return (rows, quarantined, parser.header, parser.delimiter, parser.had_bom), out


def _value(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.6:
        return rng.choice(["web01", "10.0.0.1", "RHEL 8", "prod", "Renée", "東京", "😀x", ""])
    return rng.choice(
        [
            '"a, b"',
            '"line one\nline two"',
            '"say ""hi"""',
            '"crlf\r\ninside"',
            " padded ",
            "\x1e",
            "\x1f",
            "\ue000\ue001",
            'st"ray',
            "tab\there",
            "semi;colon",
        ]
    )


def _line(rng: random.Random, width: int, delimiter: str) -> bytes:
    kind = rng.random()
    if kind < 0.85:
        values = [_value(rng) if rng.random() < 0.3 else f"v{rng.randrange(1000)}"]
        values += [_value(rng) for _ in range(width - 1)]
        if rng.random() < 0.5:  # mostly plain lines, so the fast path has blocks to take
            values = [f"host{rng.randrange(10**6)}" for _ in range(width)]
        return (delimiter.join(values) + "\n").encode()
    return rng.choice(
        [
            b"\n",
            b"\r\n",
            b" " + delimiter.encode() * (width - 1) + b"\n",
            delimiter.encode() * (width - 1) + b"\n",
            b"ragged\n",
            delimiter.encode().join([b"x"] * (width + 1)) + b"\n",
            b"nul\x00" + delimiter.encode() * (width - 1) + b"\n",
            b"bad\xff" + delimiter.encode() * (width - 1) + b"\n",
            b"y" * 90 + delimiter.encode() * (width - 1) + b"\n",
            b'"unterminated' + delimiter.encode() * (width - 1) + b"\n",
            "\u3000".encode() + delimiter.encode() * (width - 1) + b"\n",
            b"\xc3\xa9" + delimiter.encode() * (width - 1) + b"\r\n",
        ]
    )


def random_file(rng: random.Random) -> bytes:
    width = rng.randrange(1, 5)
    delimiter = rng.choice([",", ";", "\t"])
    head = ("\ufeff" if rng.random() < 0.3 else "") + delimiter.join(
        f"col{i}" for i in range(width)
    )
    body = b"".join(_line(rng, width, delimiter) for _ in range(rng.randrange(0, 60)))
    data = head.encode() + b"\n" + body
    return data[:-1] if data.endswith(b"\n") and rng.random() < 0.3 else data


def random_cuts(rng: random.Random, size: int) -> list[int]:
    if size < 2:
        return []
    if rng.random() < 0.1:
        return list(range(1, size))  # every byte its own chunk
    return sorted(rng.sample(range(1, size), min(size - 1, rng.randrange(1, 12))))


@pytest.mark.parametrize("seed", range(40))
def test_block_path_equals_the_per_record_path_on_random_files_and_splits(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        data = random_file(rng)
        cuts = random_cuts(rng, len(data))
        options = {"block_bytes": rng.choice([1, 7, 64, 1 << 16])}
        if rng.random() < 0.3:
            options["max_record_bytes"] = rng.choice([40, 100])
        expected = reference(data, cuts, **{k: v for k, v in options.items() if k != "block_bytes"})
        got, _ = blocks(data, cuts, **options)
        assert got == expected, (data, cuts, options)


def test_chunk_boundaries_inside_quoted_fields_and_multibyte_characters() -> None:
    data = b"name,note\n" + b"".join(
        f'r{i},"{"東京😀" * (i % 3)}\n""q"", x"\n'.encode()
        if i % 5 == 0
        else f"r{i},é{i}\n".encode()
        for i in range(200)
    )
    expected = reference(data, [])
    for cut in range(1, len(data), 3):
        got, _ = blocks(data, [cut, min(len(data), cut + 5)], block_bytes=1)
        assert got == expected, cut


def test_plain_lines_pass_as_their_own_text() -> None:
    lines = [f"srv{i},10.0.{i // 256}.{i % 256},prod" for i in range(1000)]
    data = ("Name,IP,Env\n" + "\n".join(lines) + "\n").encode()
    # The header alone first: the block that holds it takes the per-record path.
    got, out = blocks(data, [12, *range(4096, len(data), 4096)], block_bytes=1)
    assert got == reference(data, [])
    plain = [b for b in out if b.line_numbers is None]
    assert sum(b.count for b in plain) == 1000
    assert all(b.row_sep == "\n" and b.value_sep == "," for b in plain)
    assert "\n".join(b.text for b in out) == "\n".join(lines)


def test_separators_are_chosen_outside_the_values() -> None:
    # Alone, the two control characters count as blank (str.isspace): "empty row".
    data = b'a,b\n"x\x1e","\x1fy"\n"\xee\x80\x80","x"\n'
    got, out = blocks(data, [])
    assert got == reference(data, [])
    (block,) = out
    assert {block.row_sep, block.value_sep}.isdisjoint("\x1e\x1f\ue000xy")
    assert [r.values for r in block.rows()] == [["x\x1e", "\x1fy"], ["\ue000", "x"]]


def test_format_errors_are_the_same() -> None:
    for data in (b"\x89PNG\r\n\x1a\n\xff\xfe", b"a\x00b,c\n1,2\n", b"x" * 300 + b"\n"):
        expected = reference(data, [3], max_record_bytes=100)
        assert isinstance(expected, str)
        got, _ = blocks(data, [3], max_record_bytes=100, block_bytes=1)
        assert got == expected
