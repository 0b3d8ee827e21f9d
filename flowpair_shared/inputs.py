"""What a request's strings may hold: one rule for NUL, one rule for free text.

* **NUL (U+0000) nowhere.** PostgreSQL text cannot store it, so a NUL that reaches SQL fails
  the statement. The interceptor checks every string field of every request before a servicer
  sees it (nested messages, repeated fields, map keys and values) and names each bad field by
  its path, e.g. ``updates[2].source_column``. Bytes fields (upload chunks) are exempt: the
  CSV parser quarantines rows with NUL bytes.
* **Free text** that the API stores and shows back (display names, reasons, file names,
  filters, environment values, ...) goes through :func:`check_text`: a maximum length in
  characters (code points, as PostgreSQL's ``length()`` counts them) and no characters that
  make text display as something it is not:

  - control characters: C0 (U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F);
  - line and paragraph separators (U+2028, U+2029);
  - bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), which can
    make a name read as another one.

  Multi-line fields (the reasons people give for pausing, cancelling, retrying) may also hold
  line feeds (U+000A) and tabs (U+0009), and nothing else from that list: a reason can be a
  pasted paragraph, a display name is one line.

Values that name things only the data defines (CSV column names in ``source_column``) are
not free text: they must match a column exactly, whatever it holds, so only NUL and a length
apply to them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from flowpair_shared.errors import FieldViolation, Validator

MAX_NUL_VIOLATIONS = 20
"""A request with NUL everywhere is refused with this many violations, not thousands."""

# U+0009 (tab) and U+000A (line feed) are the only difference between the two rules.
_SINGLE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_MULTI_LINE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def check_text(
    value: str, field: str, v: Validator, *, max_length: int, multiline: bool = False
) -> None:
    """Record a violation when ``value`` is longer than ``max_length`` characters or holds a
    character free text may not (see the module's docstring)."""
    if len(value) > max_length:
        v.add(field, f"must be at most {max_length} characters, got {len(value)}")
    bad = (_MULTI_LINE if multiline else _SINGLE_LINE).search(value)
    if bad is not None:
        allowed = " (line feeds and tabs are allowed)" if multiline else ""
        v.add(
            field,
            f"must not contain control, line-separator or bidirectional-override characters"
            f"{allowed}; found U+{ord(bad.group()):04X} at character {bad.start()}",
        )


def check_length(value: str, field: str, v: Validator, *, max_length: int) -> None:
    """Only a length, for values that must match data as it is (CSV column names)."""
    if len(value) > max_length:
        v.add(field, f"must be at most {max_length} characters, got {len(value)}")


def nul_violations(message: Message) -> list[FieldViolation]:
    """A violation for each string field of ``message`` (at any depth) that holds NUL."""
    found: list[FieldViolation] = []
    for path in _nul_paths(message, ""):
        found.append(
            FieldViolation(path, "must not contain NUL (U+0000) characters; text cannot hold them")
        )
        if len(found) >= MAX_NUL_VIOLATIONS:
            break
    return found


def _key(key: object) -> str:
    if isinstance(key, str):
        shown = key if len(key) <= 40 else key[:39] + "\u2026"
        return '"' + shown.replace("\\", "\\\\").replace('"', '\\"').replace("\x00", "\\0") + '"'
    return str(key)


def _nul_paths(message: Message, prefix: str) -> Iterator[str]:
    for fd, value in message.ListFields():
        path = f"{prefix}{fd.name}"
        if fd.type == FieldDescriptor.TYPE_STRING:
            if fd.is_repeated:
                for i, item in enumerate(value):
                    if "\x00" in item:
                        yield f"{path}[{i}]"
            elif "\x00" in value:
                yield path
        elif fd.message_type is not None:
            if fd.message_type.GetOptions().map_entry:
                value_fd = fd.message_type.fields_by_name["value"]
                for key in value:
                    item = value[key]
                    if isinstance(key, str) and "\x00" in key:
                        yield f"{path}[{_key(key)}] (key)"
                    if value_fd.type == FieldDescriptor.TYPE_STRING and "\x00" in item:
                        yield f"{path}[{_key(key)}]"
                    elif value_fd.type == FieldDescriptor.TYPE_MESSAGE:
                        yield from _nul_paths(item, f"{path}[{_key(key)}].")
            elif fd.is_repeated:
                for i, item in enumerate(value):
                    yield from _nul_paths(item, f"{path}[{i}].")
            else:
                yield from _nul_paths(value, f"{path}.")
