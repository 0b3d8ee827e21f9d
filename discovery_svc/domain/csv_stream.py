"""Push parser for CSV uploads that arrive as byte chunks of arbitrary size.

The parser holds only the record being assembled (bounded by ``max_record_bytes`` plus one chunk),
so a file of any size is parsed in constant memory. Chunk boundaries may fall anywhere, including
inside a multi-byte UTF-8 character or a quoted field: bytes are only decoded once a whole record
has been assembled.

Rules that are not obvious from the interface:

* Records end at ``\\n`` (a trailing ``\\r`` is dropped, so CRLF works) unless the newline is
  inside double quotes. Quote state is the parity of ``"`` bytes in the record, so ``""`` inside
  a quoted field toggles twice and changes nothing.
* Completely empty physical lines (nothing but an optional ``\\r``) are skipped silently wherever
  they occur; they still count as lines, so reported line numbers match the file. A record that
  has content but no values (``" "``, ``",,,"``, ``'""'``) is quarantined as ``"empty row"``,
  because it usually means a data problem the user should see. Before the header, such blank
  records are skipped: there is nothing yet to quarantine them against. So is PowerShell's
  ``#TYPE ...`` line (``Export-Csv`` without ``-NoTypeInformation``).
* An oversized record is quarantined as soon as it is known to be too long, and its remaining
  bytes are discarded as they arrive. Parsing resumes after the first newline at or beyond byte
  ``max_record_bytes + 1`` of the record. If quotes are balanced there, that newline is the real
  end of the record. If a quote is still open, we cannot tell a stray quote from a huge quoted
  field without reading arbitrarily far ahead; trusting the quote could discard the rest of the
  file, so the quote is treated as unbalanced and parsing resumes at that newline anyway.
* Rows containing a NUL character are quarantined: PostgreSQL text cannot store NUL, and one such
  value would fail the whole COPY batch. For the same reason excerpts show NUL as ``\\0``.
* An empty upload (or one with only blank lines) leaves ``header`` as ``None`` and raises
  nothing; the caller decides whether that is an error, as it does for a header-only file.

``feed_blocks()``/``close_blocks()`` return the same rows and quarantined records packed into
``RowBlock``s, text a database can split itself, so that a block is stored with one statement
and no Python object per value. A stretch of plain lines (no quotes, no CR, no NUL, valid UTF-8,
every line as wide as the header, none starting blank) is checked with whole-block string
operations and passed on as the decoded text itself; anything else goes through the per-record
path above and is packed afterwards, so both paths yield exactly the same rows.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from typing import cast

__all__ = ["CsvFormatError", "CsvStreamParser", "Quarantined", "Row", "RowBlock"]

_BOM = b"\xef\xbb\xbf"
# Order matters: it is the tie-break when counts are equal.
_DELIMITERS = (",", ";", "\t")
_EXCERPT_CHARS = 200
# A UTF-8 character is at most 4 bytes, so this many bytes always hold the first
# _EXCERPT_CHARS characters; decoding more of a 1 MiB record would be wasted work.
_EXCERPT_BYTES = _EXCERPT_CHARS * 4
_NOT_TEXT = "the header row is not UTF-8 text; is this a CSV file?"


_SEPARATORS_AND_SPACE = ",;\t| \r\n\f\v"


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A record that cannot be imported, with the reason shown to the user."""

    line_number: int
    reason: str
    excerpt: str


@dataclass(frozen=True, slots=True)
class Row:
    """A data record with exactly one value per header column, values exactly as parsed."""

    line_number: int
    values: list[str]


@dataclass(frozen=True, slots=True)
class RowBlock:
    """Consecutive rows of the file as one text, plus the quarantined records among them.

    ``text`` holds ``count`` rows separated by ``row_sep``, each row's values separated by
    ``value_sep``; neither separator occurs in any value, so splitting restores the values
    exactly. Row ``i`` (from 0) is on line ``line_numbers[i]``, or ``first_line + i`` when
    ``line_numbers`` is None.
    """

    text: str
    row_sep: str
    value_sep: str
    count: int
    first_line: int
    line_numbers: list[int] | None
    quarantined: list[Quarantined]

    def rows(self) -> list[Row]:
        if not self.count:
            return []
        lines = self.line_numbers or range(self.first_line, self.first_line + self.count)
        split = self.text.split(self.row_sep)
        return [Row(n, r.split(self.value_sep)) for n, r in zip(lines, split, strict=True)]


@dataclass(frozen=True, slots=True)
class _Lines:
    """A stretch of plain lines that passed the block checks (see the module docs)."""

    text: str
    first_line: int
    count: int


class CsvFormatError(Exception):
    """The file as a whole cannot be imported (clear message for the client)."""


class _OneLine:
    """Iterator that yields whatever record was last assigned to ``line``, then stops.

    One ``csv.reader`` is created per file and pulled with ``next()`` once per record: building
    a reader per record would roughly triple the cost of parsing one. Stopping after
    one item is what makes a record with an unterminated quote end at the record boundary
    (``strict=False`` then returns what was read) instead of swallowing the next record.
    """

    __slots__ = ("line",)

    def __init__(self) -> None:
        self.line: str | None = None

    def __iter__(self) -> _OneLine:
        return self

    def __next__(self) -> str:
        line = self.line
        if line is None:
            raise StopIteration
        self.line = None
        return line


class CsvStreamParser:
    """Incremental CSV parser: ``feed()`` byte chunks, then ``close()``.

    Both return the rows and quarantined records completed so far, in file order. The first
    non-blank record is the header; it sets ``header``, ``delimiter`` (``,``, ``;`` or tab,
    detected from the header) and is never returned as a row. ``CsvFormatError`` means the whole
    file is unusable; the parser then refuses further input.
    """

    def __init__(
        self,
        *,
        max_record_bytes: int = 1 << 20,
        max_columns: int = 2000,
        block_bytes: int = 64 * 1024,
    ) -> None:
        if max_record_bytes < 1 or max_columns < 1 or block_bytes < 1:
            raise ValueError("max_record_bytes, max_columns and block_bytes must be positive")
        self._block_bytes = block_bytes
        self.header: list[str] | None = None
        self.delimiter: str | None = None
        self.had_bom = False
        self._max_record = max_record_bytes
        self._max_columns = max_columns
        # Unconsumed input; _buf[0] is always the first byte of the current record.
        self._buf = bytearray()
        # _buf[:_scan] has already been folded into _in_quote, so rescans are never needed.
        self._scan = 0
        self._in_quote = False
        # Physical line on which the record at _buf[0] starts.
        self._line = 1
        self._bom_pending = True
        self._discarding = False
        self._closed = False
        self._failure: CsvFormatError | None = None
        self._pending = bytearray()
        self._feeder = _OneLine()
        self._reader: Iterator[list[str]] | None = None
        # The csv module rejects fields over 128 KiB by default; our own record limit is the
        # real memory bound, so raise the (process-wide) limit to match it, never lower it.
        csv.field_size_limit(max(csv.field_size_limit(), max_record_bytes))

    def feed(self, chunk: bytes) -> list[Row | Quarantined]:
        """Consume the next chunk; return what it completed."""
        # Without the fast path no _Lines are made.
        return cast(list[Row | Quarantined], self._feed(chunk, fast=False))

    def close(self) -> list[Row | Quarantined]:
        """Flush the last record (the file need not end with a newline)."""
        return cast(list[Row | Quarantined], self._close(fast=False))

    def feed_blocks(self, chunk: bytes) -> list[RowBlock]:
        """``feed()``, but the rows packed into blocks (see the module docs).

        Chunks are gathered up to ``block_bytes`` first, so that small chunks still make
        blocks big enough to be worth a statement each; the parser does not depend on where
        chunks end, so this changes nothing but when rows come out.
        """
        self._check_usable()
        if len(self._pending) + len(chunk) < self._block_bytes:
            self._pending += chunk
            return []
        if self._pending:
            self._pending += chunk
            chunk, self._pending = bytes(self._pending), bytearray()
        return _pack(self._feed(chunk, fast=True), self.delimiter or ",")

    def close_blocks(self) -> list[RowBlock]:
        """``close()`` for ``feed_blocks()``."""
        self._check_usable()
        out: list[_Item] = []
        if self._pending:
            chunk, self._pending = bytes(self._pending), bytearray()
            out = self._feed(chunk, fast=True)
        return _pack(out + self._close(fast=True), self.delimiter or ",")

    def _feed(self, chunk: bytes, *, fast: bool) -> list[_Item]:
        self._check_usable()
        out: list[_Item] = []
        if self._discarding:
            nl = chunk.find(b"\n")
            if nl < 0:
                return out
            self._discarding = False
            self._line += 1
            self._buf += memoryview(chunk)[nl + 1 :]
        else:
            self._buf += chunk
        self._run(out, final=False, fast=fast)
        return out

    def _close(self, *, fast: bool) -> list[_Item]:
        self._check_usable()
        self._closed = True
        out: list[_Item] = []
        if not self._discarding:
            self._run(out, final=True, fast=fast)
        return out

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise RuntimeError("the parser is closed")

    def _run(self, out: list[_Item], *, final: bool, fast: bool) -> None:
        try:
            self._drain(out, final=final, fast=fast)
        except CsvFormatError as exc:
            self._failure = exc
            self._buf = bytearray()
            raise

    def _drain(self, out: list[_Item], *, final: bool, fast: bool) -> None:
        buf = self._buf
        if self._bom_pending:
            if not final and len(buf) < len(_BOM) and _BOM.startswith(buf):
                return
            self._bom_pending = False
            if buf.startswith(_BOM):
                del buf[: len(_BOM)]
                self.had_bom = True
        limit = self._max_record
        start = 0
        pos = self._scan
        in_quote = self._in_quote
        if fast and not in_quote:
            # Rescan the unfinished line left by the last chunk, so that it starts the next
            # block instead of making a one-row block of its own. The fast path gathers chunks
            # to block_bytes, so a line is rescanned at most once per block_bytes of input.
            pos = start
        while True:
            if pos == start and not in_quote:
                # At a record boundary: hand every complete line over in one block.
                last = buf.rfind(b"\n", pos)
                if last < 0:
                    break
                if fast and self._plain_lines(buf, pos, last, out):
                    start = pos = last + 1
                    continue
                open_at = self._emit_lines(buf[pos:last], out)
                if open_at < 0:
                    start = pos = last + 1
                else:
                    start = pos + open_at
                    pos = last + 1
                    in_quote = True
                continue
            # Continuing a record left open by the previous chunk, one line at a time.
            nl = buf.find(b"\n", pos)
            if nl < 0:
                break
            if buf.count(b'"', pos, nl) & 1:
                in_quote = not in_quote
            pos = nl + 1
            if not in_quote:
                record = buf[start:nl]
                self._record(record, self._line, out)
                self._line += record.count(b"\n") + 1
                start = pos
            elif nl - start > limit:
                # A newline past the limit inside quotes: the resume point (see module docs).
                self._quarantine_oversized(buf[start : start + limit], self._line, out)
                self._line += buf.count(b"\n", start, nl) + 1
                start = pos
                in_quote = False
        if final:
            if start < len(buf):
                self._record(buf[start:], self._line, out)
            start = pos = len(buf)
        elif len(buf) - start > limit + 1:
            # Even if the next byte were the newline after a "\r", the record is too long.
            self._quarantine_oversized(buf[start : start + limit], self._line, out)
            self._line += buf.count(b"\n", start)
            self._discarding = True
            in_quote = False
            start = pos = len(buf)
        elif buf.count(b'"', pos) & 1:
            in_quote = not in_quote
        del buf[:start]
        self._scan = len(buf)
        self._in_quote = in_quote

    def _plain_lines(self, buf: bytearray, pos: int, end: int, out: list[_Item]) -> bool:
        """Emit ``buf[pos:end]`` (whole lines at a record boundary) as one ``_Lines`` if every
        line is a plain, valid row; otherwise emit nothing and return False."""
        header = self.header
        if header is None or pos == end:
            return False
        if buf.find(b'"', pos, end) >= 0 or buf.find(b"\r", pos, end) >= 0:
            return False
        if buf.find(0, pos, end) >= 0:
            return False
        raw = buf[pos:end]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return False
        limit = self._max_record
        if end - pos > limit and max(map(len, raw.split(b"\n"))) > limit:
            return False
        assert self.delimiter is not None
        # A line that is empty or starts blank might be blank (skipped or quarantined).
        if _BLANK_START[self.delimiter].search(text) or text[:1].isspace():
            return False
        if text[:1] == self.delimiter or text[-1:] == "\n":
            return False
        count = text.count("\n") + 1
        width = len(header) - 1
        if text.count(self.delimiter) != width * count:
            return False
        # The total is right, so every line is as wide as the header unless one is wider.
        if count > 1 and max(map(str.count, text.split("\n"), repeat(self.delimiter))) > width:
            return False
        out.append(_Lines(text, self._line, count))
        self._line += count
        return True

    def _emit_lines(self, block: bytearray, out: list[_Item]) -> int:
        """Emit the records in ``block``: whole lines, starting at a record boundary.

        Returns the offset in ``block`` of a record whose quoted field is still open at the end of
        the block (it continues in later input), or -1 if every record is complete.
        """
        limit = self._max_record
        line = self._line
        offset = 0
        # Lines of a record with a quoted newline, while it is being assembled.
        parts: list[bytearray] | None = None
        open_at = open_line = open_len = 0
        for raw in block.split(b"\n"):
            if parts is None:
                if not raw.count(b'"') & 1:
                    self._record(raw, line, out)
                elif len(raw) > limit:
                    self._quarantine_oversized(raw[:limit], line, out)
                else:
                    parts = [raw]
                    open_at, open_line, open_len = offset, line, len(raw)
            else:
                parts.append(raw)
                open_len += 1 + len(raw)
                if raw.count(b'"') & 1:
                    self._record(b"\n".join(parts), open_line, out)
                    parts = None
                elif open_len > limit:
                    self._quarantine_oversized(b"\n".join(parts)[:limit], open_line, out)
                    parts = None
            offset += len(raw) + 1
            line += 1
        if parts is None:
            self._line = line
            return -1
        self._line = open_line
        return open_at

    def _record(self, record: bytes | bytearray, line: int, out: list[_Item]) -> None:
        """Handle one complete record (without its final newline)."""
        if record[-1:] == b"\r":
            record = record[:-1]
        if not record:
            return
        if len(record) > self._max_record:
            self._quarantine_oversized(record[: self._max_record], line, out)
            return
        try:
            text = record.decode("utf-8")
        except UnicodeDecodeError as exc:
            if self.header is None:
                raise CsvFormatError(_NOT_TEXT) from exc
            reason = f"undecodable bytes (not UTF-8) at byte offset {exc.start} of the row"
            out.append(Quarantined(line, reason, _excerpt(record)))
            return
        if "\x00" in text:
            if self.header is None:
                raise CsvFormatError("the header row contains NUL bytes; is this a CSV file?")
            reason = f"NUL byte at byte offset {record.find(0)} of the row"
            out.append(Quarantined(line, reason, _clip(text)))
            return
        header = self.header
        if header is None:
            self._take_header(text)
            return
        if '"' in text or "\r" in text:
            assert self._reader is not None
            self._feeder.line = text
            try:
                values = next(self._reader, [])
            except csv.Error as exc:
                out.append(Quarantined(line, f"malformed CSV: {exc}", _clip(text)))
                return
        else:
            # Without quotes or CRs the csv module splits exactly like str.split, only slower.
            assert self.delimiter is not None
            values = text.split(self.delimiter)
        # csv returns no values at all for a lone "\r".
        first = values[0] if values else ""
        if (not first or first.isspace()) and _all_blank(values):
            out.append(Quarantined(line, "empty row", _clip(text)))
        elif len(values) != len(header):
            reason = f"ragged row: {len(values)} fields, header has {len(header)}"
            out.append(Quarantined(line, reason, _clip(text)))
        else:
            out.append(Row(line, values))

    def _take_header(self, text: str) -> None:
        # Above the header: blank lines, an empty first spreadsheet row saved as ";;;;", and
        # PowerShell's Export-Csv type line ("#TYPE System.Management.Automation.PSObject").
        if not text.strip(_SEPARATORS_AND_SPACE) or text.startswith("#TYPE "):
            return
        delimiter = _detect_delimiter(text)
        try:
            names = next(_reader([text], delimiter), [])
        except csv.Error as exc:
            raise CsvFormatError(f"the header row is not valid CSV: {exc}") from exc
        if len(names) > self._max_columns:
            raise CsvFormatError(
                f"the header has {len(names)} columns; at most {self._max_columns} are supported"
            )
        self.header = _unique_names(names)
        self.delimiter = delimiter
        self._reader = _reader(self._feeder, delimiter)

    def _quarantine_oversized(self, head: bytes | bytearray, line: int, out: list[_Item]) -> None:
        """Report a record longer than the limit; ``head`` is its first ``max_record_bytes``.

        Callers pass exactly that much because it is always buffered when a record is found too
        long, so the excerpt does not depend on where the chunk boundaries happened to fall.
        """
        if self.header is None:
            raise CsvFormatError(
                f"the header row is longer than {self._max_record} bytes; is this a CSV file?"
            )
        reason = f"row longer than {self._max_record} bytes"
        out.append(Quarantined(line, reason, _excerpt(head)))


_Item = Row | Quarantined | _Lines

# A newline followed by a blank character or the delimiter: a line that may be blank.
_BLANK_START = {d: re.compile(rf"\n[\s{re.escape(d)}]") for d in _DELIMITERS}


def _pack(items: Sequence[_Item], delimiter: str) -> list[RowBlock]:
    """Blocks of ``items`` in file order: a ``_Lines`` as it is, each run of rows and
    quarantined records in between packed into one block."""
    blocks: list[RowBlock] = []
    rows: list[Row] = []
    quarantined: list[Quarantined] = []
    for item in chain(items, [None]):
        if isinstance(item, Row):
            rows.append(item)
        elif isinstance(item, Quarantined):
            quarantined.append(item)
        elif rows or quarantined:
            blocks.append(_pack_rows(rows, quarantined))
            rows, quarantined = [], []
        if isinstance(item, _Lines):
            blocks.append(
                RowBlock(item.text, "\n", delimiter, item.count, item.first_line, None, [])
            )
    return blocks


def _pack_rows(rows: list[Row], quarantined: list[Quarantined]) -> RowBlock:
    # Two characters that occur in no value: the usual control characters if free, else the
    # first free ones from the private use area (a block cannot use them all).
    used = set("".join(chain.from_iterable(row.values for row in rows)))
    free = (c for c in chain("\x1e\x1f", map(chr, range(0xE000, 0x110000))) if c not in used)
    row_sep, value_sep = next(free), next(free)
    text = row_sep.join(value_sep.join(row.values) for row in rows)
    lines = [row.line_number for row in rows]
    first = lines[0] if lines else 0
    return RowBlock(text, row_sep, value_sep, len(rows), first, lines, quarantined)


def _reader(lines: Iterable[str], delimiter: str) -> Iterator[list[str]]:
    return csv.reader(lines, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)


def _excerpt(raw: bytes | bytearray) -> str:
    return _clip(raw[:_EXCERPT_BYTES].decode("utf-8", errors="replace"))


def _clip(text: str) -> str:
    # Excerpts are stored in PostgreSQL too, which cannot hold NUL; spell it out instead.
    return text[:_EXCERPT_CHARS].replace("\x00", "\\0")[:_EXCERPT_CHARS]


def _all_blank(values: list[str]) -> bool:
    return all(not value or value.isspace() for value in values)


def _detect_delimiter(text: str) -> str:
    # Even-numbered pieces between quotes are the parts outside quoted fields.
    outside = text.split('"')[::2]
    counts = [sum(piece.count(d) for piece in outside) for d in _DELIMITERS]
    best = max(range(len(_DELIMITERS)), key=lambda i: (counts[i], -i))
    return _DELIMITERS[best] if counts[best] else ","


def _unique_names(raw_names: list[str]) -> list[str]:
    names: list[str] = []
    taken: set[str] = set()
    next_suffix: dict[str, int] = {}
    for position, raw in enumerate(raw_names, start=1):
        base = raw.strip() or f"column_{position}"
        name = base
        key = base.casefold()
        if name.casefold() in taken:
            suffix = next_suffix.get(key, 2)
            # The suffixed name may itself be a real column ("a", "a", "a_2"): keep counting.
            while f"{base}_{suffix}".casefold() in taken:
                suffix += 1
            next_suffix[key] = suffix + 1
            name = f"{base}_{suffix}"
        taken.add(name.casefold())
        names.append(name)
    return names
