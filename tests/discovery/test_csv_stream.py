"""CsvStreamParser: chunk-independent, constant-memory parsing of uploaded CSV files."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import pytest

from discovery_svc.domain.csv_stream import CsvFormatError, CsvStreamParser, Quarantined, Row

REAL_EXPORT = (
    Path(__file__).resolve().parents[2]
    / "examples"
    / "realdata"
    / "servicenow_style_cmdb_export.csv"
)

Result = list[Row | Quarantined]


def parse(
    data: bytes, chunk_size: int | None = None, **options: int
) -> tuple[CsvStreamParser, Result]:
    parser = CsvStreamParser(**options)
    size = chunk_size or max(len(data), 1)
    results: Result = []
    for i in range(0, len(data), size):
        results += parser.feed(data[i : i + size])
    results += parser.close()
    return parser, results


def rows(results: Result) -> list[tuple[int, list[str]]]:
    return [(r.line_number, r.values) for r in results if isinstance(r, Row)]


def quarantined(results: Result) -> list[tuple[int, str]]:
    return [(r.line_number, r.reason) for r in results if isinstance(r, Quarantined)]


# Everything at once: BOM, CRLF, multi-byte characters (2, 3 and 4 bytes), quoted delimiters,
# quoted newlines, escaped quotes, blank and empty rows, ragged and undecodable rows, an
# oversized row (with the small limit below) and no newline at the end.
TRICKY = (
    b'\xef\xbb\xbfname,"note, with comma",city\r\n'
    b"Ren\xc3\xa9e,caf\xc3\xa9,\xe6\x9d\xb1\xe4\xba\xac\r\n"
    b'"Smith, J","line one\r\nline ""two""",\xf0\x9f\x98\x80\r\n'
    b"\r\n"
    b" , ,\r\n"
    b"a,b\r\n"
    b"bad\xff\xfe,x,y\r\n"
    b'"x","' + b"z" * 70 + b'",y\r\n'
    b'q,"multi\nline\nvalue",w\r\n'
    b"last,row,here"
)


def expected_tricky() -> tuple[list[tuple[int, list[str]]], list[tuple[int, str]]]:
    return (
        [
            (2, ["Renée", "café", "東京"]),
            (3, ["Smith, J", 'line one\r\nline "two"', "😀"]),
            (10, ["q", "multi\nline\nvalue", "w"]),
            (13, ["last", "row", "here"]),
        ],
        [
            (6, "empty row"),
            (7, "ragged row: 2 fields, header has 3"),
            (8, "undecodable bytes (not UTF-8) at byte offset 3 of the row"),
            (9, "row longer than 64 bytes"),
        ],
    )


def test_tricky_file_parses_as_expected() -> None:
    parser, results = parse(TRICKY, max_record_bytes=64)
    assert parser.had_bom
    assert parser.delimiter == ","
    assert parser.header == ["name", "note, with comma", "city"]
    assert (rows(results), quarantined(results)) == expected_tricky()
    assert [r.line_number for r in results] == sorted(r.line_number for r in results)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64])
def test_chunk_boundaries_do_not_change_results(chunk_size: int) -> None:
    whole_parser, whole = parse(TRICKY, max_record_bytes=64)
    parser, chunked = parse(TRICKY, chunk_size, max_record_bytes=64)
    assert chunked == whole
    assert (parser.header, parser.delimiter, parser.had_bom) == (
        whole_parser.header,
        whole_parser.delimiter,
        whole_parser.had_bom,
    )


def test_every_split_point_gives_the_same_result() -> None:
    _, whole = parse(TRICKY, max_record_bytes=64)
    for cut in range(len(TRICKY) + 1):
        parser = CsvStreamParser(max_record_bytes=64)
        results = parser.feed(TRICKY[:cut]) + parser.feed(TRICKY[cut:]) + parser.close()
        assert results == whole, f"split at byte {cut}"


def test_random_well_formed_files_round_trip_through_csv_writer() -> None:
    rng = random.Random(20240601)
    alphabet = ["a", "Z", " ", ",", ";", "\t", '"', "\n", "\r\n", "é", "東京", "😀", "0"]
    for _ in range(300):
        delimiter = rng.choice([",", ";", "\t"])
        width = rng.randint(2, 5)
        table = [[f"h{i}" for i in range(width)]]
        for _ in range(rng.randint(0, 6)):
            table.append(
                ["".join(rng.choices(alphabet, k=rng.randint(1, 6))) for _ in range(width)]
            )
        out = io.StringIO()
        writer = csv.writer(
            out,
            delimiter=delimiter,
            lineterminator=rng.choice(["\n", "\r\n"]),
            quoting=rng.choice([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
        )
        writer.writerows(table)
        data = out.getvalue().encode()
        parser, results = parse(data, rng.randint(1, 16))
        assert parser.delimiter == delimiter
        assert parser.header == table[0]
        expected = [r for r in table[1:] if any(v.strip() for v in r)]
        assert [r.values for r in results if isinstance(r, Row)] == expected


def test_bom_is_stripped_only_at_the_start() -> None:
    parser, results = parse(b"\xef\xbb\xbfid,name\n1,\xef\xbb\xbfx\n")
    assert parser.had_bom
    assert parser.header == ["id", "name"]
    assert rows(results) == [(2, ["1", "\ufeffx"])]

    parser, _ = parse(b"id,name\n1,x\n")
    assert not parser.had_bom


def test_crlf_line_endings() -> None:
    parser, results = parse(b"a,b\r\n1,2\r\n3,4\r\n")
    assert parser.header == ["a", "b"]
    assert rows(results) == [(2, ["1", "2"]), (3, ["3", "4"])]
    assert quarantined(results) == []


@pytest.mark.parametrize(
    ("header", "delimiter"),
    [
        (b"a;b;c", ";"),
        (b"a\tb\tc", "\t"),
        (b"a,b;c;d", ";"),
        (b'"x,y,z";b', ";"),  # delimiters inside quotes do not count
        (b"a,b;c", ","),  # tie: comma wins
        (b"a;b\tc", ";"),  # tie: semicolon beats tab
        (b"only one column", ","),
    ],
)
def test_delimiter_detection(header: bytes, delimiter: str) -> None:
    parser, _ = parse(header + b"\n")
    assert parser.delimiter == delimiter


def test_semicolon_and_tab_files_parse_rows() -> None:
    _, results = parse(b"a;b\n1,5;2\n")
    assert rows(results) == [(2, ["1,5", "2"])]
    _, results = parse(b"a\tb\n1\t2 3\n")
    assert rows(results) == [(2, ["1", "2 3"])]


def test_quoted_fields_and_line_numbers() -> None:
    data = (
        b"id,text,n\n"
        b'1,"has, comma",x\n'
        b'2,"spans\nthree\nlines",y\n'
        b'3,"say ""hi""",z\n'
        b'4,"",  padded  \n'
    )
    _, results = parse(data)
    assert rows(results) == [
        (2, ["1", "has, comma", "x"]),
        (3, ["2", "spans\nthree\nlines", "y"]),
        (6, ["3", 'say "hi"', "z"]),
        (7, ["4", "", "  padded  "]),
    ]


def test_ragged_rows_are_quarantined() -> None:
    _, results = parse(b"a,b,c,d,e\n1,2,3\n1,2,3,4,5\n1,2,3,4,5,6\n")
    assert rows(results) == [(3, ["1", "2", "3", "4", "5"])]
    assert quarantined(results) == [
        (2, "ragged row: 3 fields, header has 5"),
        (4, "ragged row: 6 fields, header has 5"),
    ]
    assert results[0] == Quarantined(2, "ragged row: 3 fields, header has 5", "1,2,3")


def test_undecodable_bytes_quarantine_only_that_row() -> None:
    _, results = parse(b"a,b\n1,2\n3,\xff\xfe\n5,6\n")
    assert rows(results) == [(2, ["1", "2"]), (4, ["5", "6"])]
    assert results[1] == Quarantined(
        3, "undecodable bytes (not UTF-8) at byte offset 2 of the row", "3,\ufffd\ufffd"
    )


def test_nul_bytes_are_quarantined_because_postgres_text_cannot_hold_them() -> None:
    _, results = parse(b"a,b\n1,x\x00y\n3,4\n\x00\xff\n")
    assert rows(results) == [(3, ["3", "4"])]
    assert results[0] == Quarantined(2, "NUL byte at byte offset 3 of the row", "1,x\\0y")
    # Excerpts are stored in PostgreSQL as well, so they never carry a NUL either.
    assert results[2] == Quarantined(
        4, "undecodable bytes (not UTF-8) at byte offset 1 of the row", "\\0\ufffd"
    )


def test_empty_lines_are_skipped_but_blank_rows_are_quarantined() -> None:
    data = b"\n\r\na,b\n\n1,2\n , \n,\n\r\n\t\n3,4\n\n\r\n\n"
    parser, results = parse(data)
    assert parser.header == ["a", "b"]
    assert rows(results) == [(5, ["1", "2"]), (10, ["3", "4"])]
    assert quarantined(results) == [(6, "empty row"), (7, "empty row"), (9, "empty row")]


def test_blank_row_with_wrong_field_count_is_reported_as_empty() -> None:
    _, results = parse(b'a,b,c\n,,,,\n"",""\n')
    assert quarantined(results) == [(2, "empty row"), (3, "empty row")]


def test_header_only_file_gives_no_rows_and_no_error() -> None:
    parser, results = parse(b"a,b,c\r\n")
    assert parser.header == ["a", "b", "c"]
    assert results == []


def test_empty_upload_leaves_header_unset() -> None:
    parser, results = parse(b"\n\r\n  \n")
    assert parser.header is None
    assert parser.delimiter is None
    assert results == []


def test_binary_garbage_header_is_a_format_error() -> None:
    parser = CsvStreamParser()
    garbage = bytes(random.Random(7).randrange(256) for _ in range(4096)) + b"\n"
    with pytest.raises(CsvFormatError, match="not UTF-8 text; is this a CSV file"):
        parser.feed(b"\x89PNG\r\n\x1a\n" + garbage)
    with pytest.raises(CsvFormatError):
        parser.feed(b"a,b\n")


def test_utf16_file_is_a_format_error() -> None:
    with pytest.raises(CsvFormatError, match="not UTF-8"):
        parse("a,b\r\n1,2\r\n".encode("utf-16"))


def test_too_many_columns_is_a_format_error() -> None:
    header = ",".join(f"c{i}" for i in range(3000)).encode() + b"\n"
    with pytest.raises(CsvFormatError, match="the header has 3000 columns; at most 2000"):
        parse(header + b"1,2\n")


def test_oversized_header_is_a_format_error() -> None:
    with pytest.raises(CsvFormatError, match="header row is longer than 100 bytes"):
        parse(b"x" * 500 + b"\n1\n", 7, max_record_bytes=100)


def test_oversized_row_is_quarantined_in_bounded_memory() -> None:
    limit = 1 << 20
    chunk = 64 * 1024
    data = b"a,b\n1,2\n" + b"3," + b"x" * (3 << 20) + b"\n4,5\n6,7\n"
    parser = CsvStreamParser(max_record_bytes=limit)
    results: Result = []
    for i in range(0, len(data), chunk):
        results += parser.feed(data[i : i + chunk])
        assert len(parser._buf) <= limit + chunk
    results += parser.close()
    assert rows(results) == [(2, ["1", "2"]), (4, ["4", "5"]), (5, ["6", "7"])]
    assert quarantined(results) == [(3, f"row longer than {limit} bytes")]
    oversized = results[1]
    assert isinstance(oversized, Quarantined)
    assert oversized.excerpt == "3," + "x" * 198


def test_oversized_row_with_stray_quote_resumes_at_the_next_newline() -> None:
    data = b"a,b\n" + b'1,"' + b"x" * 5000 + b"\n2,3\n4,5\n"
    _, results = parse(data, 512, max_record_bytes=1000)
    assert quarantined(results) == [(2, "row longer than 1000 bytes")]
    assert rows(results) == [(3, ["2", "3"]), (4, ["4", "5"])]


def test_stray_quote_swallows_at_most_max_record_bytes_of_following_rows() -> None:
    lines = [b'1,broken "quote'] + [f"{i},ok".encode() for i in range(2, 200)]
    data = b"a,b\n" + b"\n".join(lines) + b"\n"
    _, results = parse(data, 33, max_record_bytes=100)
    assert quarantined(results) == [(2, "row longer than 100 bytes")]
    good = rows(results)
    # The open quote made lines 2.. one record until it passed 100 bytes; parsing resumed
    # right after the first newline beyond that point.
    assert good[0][0] < 20
    assert good[-1] == (200, ["199", "ok"])
    assert [n for n, _ in good] == list(range(good[0][0], 201))


def test_oversized_quoted_multiline_record_is_cut_at_the_first_newline_past_the_limit() -> None:
    # A legitimately quoted 10-line field, too long for the limit. Its open quote cannot be told
    # from a stray one, so parsing resumes inside the field: the remaining field lines become
    # ragged debris, and the closing quote opens a new "record" that is cut again once it passes
    # the limit. The damage stays bounded and line numbers stay exact.
    field = b"\n".join([b"y" * 30] * 10)
    data = b"a,b\n" + b'1,"' + field + b'"\n' + b"".join(b"%d,ok\n" % n for n in range(12, 42))
    debris = [(n, "ragged row: 1 fields, header has 2") for n in range(6, 11)]
    for size in (1, 5, 1000):
        _, results = parse(data, size, max_record_bytes=100)
        assert quarantined(results) == [
            (2, "row longer than 100 bytes"),
            *debris,
            (11, "row longer than 100 bytes"),
        ]
        assert rows(results) == [(n, [str(n), "ok"]) for n in range(24, 42)]


def test_unterminated_quote_at_end_of_file_still_yields_the_record() -> None:
    _, results = parse(b'a,b\n1,"open\nmore')
    assert rows(results) == [(2, ["1", "open\nmore"])]


def test_record_that_leaves_csv_inside_quotes_does_not_affect_the_next_one() -> None:
    # Two quotes, so the record ends at its newline; the csv module sees a literal quote in the
    # first field and an unclosed quoted second field, which strict=False ends at the record.
    _, results = parse(b'a,b\nx"a,"b\n1,2\n')
    assert rows(results) == [(2, ['x"a', "b"]), (3, ["1", "2"])]


def test_bare_carriage_return_inside_a_record_is_malformed() -> None:
    _, results = parse(b"a,b\n1\r2,3\n4,5\n")
    assert rows(results) == [(3, ["4", "5"])]
    assert len(quarantined(results)) == 1
    assert quarantined(results)[0][1].startswith("malformed CSV:")


def test_duplicate_and_empty_header_names() -> None:
    parser, _ = parse(b" id ,Name,,name,NAME, ,name_2,id\n")
    assert parser.header == [
        "id",
        "Name",
        "column_3",
        "name_2",
        "NAME_3",
        "column_6",
        "name_2_2",
        "id_2",
    ]


def test_file_without_trailing_newline() -> None:
    _, results = parse(b"a,b\n1,2\n3,4")
    assert rows(results) == [(2, ["1", "2"]), (3, ["3", "4"])]
    _, results = parse(b"a,b\r\n1,2\r")
    assert rows(results) == [(2, ["1", "2"])]


def test_values_are_not_stripped() -> None:
    _, results = parse(b"a,b\n  x , y\t\n")
    assert rows(results) == [(2, ["  x ", " y\t"])]


def test_parser_refuses_input_after_close() -> None:
    parser = CsvStreamParser()
    parser.feed(b"a\n1\n")
    parser.close()
    with pytest.raises(RuntimeError):
        parser.feed(b"2\n")


def test_real_servicenow_export() -> None:
    data = REAL_EXPORT.read_bytes()
    parser, results = parse(data, 1000)
    assert parser.header is not None
    assert parser.header[0] == "serv_u_environment"
    assert len(parser.header) == 17
    assert quarantined(results) == []
    assert len(rows(results)) == 109
    assert parse(data)[1] == results
