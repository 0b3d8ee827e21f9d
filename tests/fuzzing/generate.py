"""Requests built from the protobuf descriptors with a seeded ``random.Random``.

Six kinds of case, for any public method:

- ``scratch``: a message generated field by field from its descriptor: strings with NUL,
  control characters, unicode, very long text or real values; integers at their bounds;
  unknown enum numbers; nested and repeated messages; Timestamps out of range; bytes.
- ``mutant``: a plausible valid request (real resource names, tokens, etags, columns) with
  one field, at any depth, replaced by a generated value.
- ``valid``: the plausible valid request itself.
- ``raw``: bytes that are not a valid encoding of the request (or barely are).
- ``metadata``: a plausible request with missing, duplicated or malformed tenant headers.
- ``probe``: a plausible request broken in one way that must get it refused whatever the
  data (a control character in a display name, a forged page token).

Plain ``random`` rather than hypothesis: the fuzzer needs ten thousand requests in about a
minute, all in flight concurrently, which hypothesis's one-example-at-a-time engine cannot
drive; a printed seed makes a run reproducible instead.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import random
import re
import string
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import message, message_factory, text_format, timestamp_pb2
from google.protobuf.descriptor import FieldDescriptor as FD

from flowpair_shared.tenancy import TENANT_HEADERS, USER_HEADER, Tenant
from tests.fuzzing.surface import Method
from tests.support import md

Metadata = tuple[tuple[str, str | bytes], ...]
# The descriptor stubs type every link (a field's message or enum type) as optional; the
# generator follows them only where the field's type says they exist.
MessageDesc = Any
FieldDesc = Any

COLLECTIONS = ("flows", "childFlows", "imports", "assets")
# AIP-158: a paginated request's token field, and the response's.
PAGE_TOKEN, NEXT_PAGE_TOKEN = "page_token", "next_page_token"
# The singular a method name uses for each collection ("GetChildFlow" → childFlows).
_SINGULAR = {"ChildFlow": "childFlows", "Flow": "flows", "Import": "imports", "Asset": "assets"}
NAME_RE = re.compile(r"^(flows|childFlows|imports|assets)/[0-9a-f-]{36}$")
NIL_UUID = "00000000-0000-0000-0000-000000000000"
MAX_DEPTH = 4
LONG = (300, 3000, 9000)

INT_RANGES = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1),
    FD.TYPE_FIXED64: (0, 2**64 - 1),
}
INT_SPECIALS: tuple[int, ...] = (
    0,
    1,
    -1,
    2,
    3,
    7,
    49,
    50,
    51,
    99,
    100,
    999,
    1000,
    1001,
    65536,
    2**31 - 1,
)
INT_SPECIALS += (-(2**31), 2**32 - 1, 2**53 + 1, 2**63 - 1, -(2**63), 2**63 - 2, -(2**63) + 1)
DOUBLE_SPECIALS: tuple[float, ...] = (
    0.0,
    -0.0,
    1.0,
    0.5,
    0.85,
    0.999999,
    1.0000001,
    -1.0,
    2.0,
    100.0,
)
DOUBLE_SPECIALS += (math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, 1e-9, 2.0**63)
# Timestamp bounds: 0001-01-01 and 9999-12-31T23:59:59 in Unix seconds.
TS_MIN, TS_MAX = -62135596800, 253402300799
TS_SECONDS = (0, 1, -1, TS_MIN, TS_MIN - 1, TS_MAX, TS_MAX + 1, 2**63 - 1, -(2**63), 1700000000)
TS_NANOS = (0, 1, 999_999_999, 1_000_000_000, -1, 2**31 - 1, -(2**31))

CONTROL_CHARS = [chr(c) for c in (*range(0, 32), 0x7F, *range(0x80, 0xA0))]
ODD_CHARS = [
    "\u200b",  # zero width space
    "\u202e",  # right-to-left override
    "\u2028",  # line separator
    "\ufeff",  # byte order mark
    "\ufffd",  # replacement character
    "\uffff",  # non-character
    "\U0010ffff",
    "\U0001f600",
    "\u0301",  # combining acute accent
    "ǅ",
    "ß",
    "İ",
    "ﬁ",
    "Ⅻ",
    "\U0001d523",  # mathematical fraktur small f
    "٣",
    "\u00a0",
]
UNICODE_RANGES: tuple[tuple[int, int], ...] = (
    (0x20, 0x7E),
    (0xA0, 0x24F),
    (0x370, 0x3FF),
    (0x590, 0x6FF),
    (0x4E00, 0x4FFF),
)
UNICODE_RANGES += ((0x1F300, 0x1F64F), (0x300, 0x36F), (0xE000, 0xE0FF), (0x10000, 0x100FF))
INJECTIONS = (
    "' OR '1'='1",
    "'; DROP TABLE orchestrator.flows; --",
    '"',
    "\\",
    "%",
    "_",
    "%%",
    "$1",
    "{}",
    "[]",
    "null",
    "None",
    "NaN",
    "true",
    "../../etc/passwd",
    "%00",
    "%2F",
    "*",
    "?",
    "status",
    "OR",
    "(",
    "<script>",
    "${jndi:x}",
    "{{7*7}}",
)
FILTER_WORDS: tuple[str, ...] = (
    "status",
    "=",
    "!=",
    "OR",
    "AND",
    "NOT",
    "(",
    ")",
    "RUNNING",
    "FLOW_STATUS_PAUSED",
)
FILTER_WORDS += ("COMPLETED", "UNSPECIFIED", "FLOW_STATUS_", "status=", "or", "*", '"', ":")
BAD_UUIDS = (
    "not-a-uuid",
    "1234",
    " ",
    "x" * 400,
    "g" * 32,
    "00000000-0000-0000-0000-00000000000",
    "00000000-0000-0000-0000-0000000000000",
    "'; DROP TABLE orchestrator.flows; --",
    "null",
    "%00",
    "--",
)


def message_class(desc: MessageDesc) -> type[message.Message]:
    return message_factory.GetMessageClass(desc)


def is_map(f: FieldDesc) -> bool:
    return bool(
        f.type == FD.TYPE_MESSAGE and f.is_repeated and f.message_type.GetOptions().map_entry
    )


def render(msg: message.Message, limit: int = 600) -> str:
    text = text_format.MessageToString(msg, as_one_line=True, as_utf8=False)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


@dataclass
class Pools:
    """Real values from the seeded data (and from answers during the run)."""

    names: dict[str, list[str]] = field(default_factory=lambda: {c: [] for c in COLLECTIONS})
    foreign_names: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    etags: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    attributes: list[str] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    import_ids: list[str] = field(default_factory=list)
    # Per method path: requests that were answered with a next_page_token, and that token.
    continuations: dict[str, list[tuple[bytes, str]]] = field(default_factory=dict)
    cap: int = 60

    def add_continuation(self, path: str, request: bytes, token: str) -> None:
        found = self.continuations.setdefault(path, [])
        if len(found) < self.cap and (request, token) not in found:
            found.append((request, token))
        self.add(self.tokens, token)

    def add(self, bucket: list[str], value: str) -> None:
        if value and value not in bucket:
            bucket.append(value)
            if len(bucket) > self.cap:
                # Keep the seeded values (first) and the newest ones.
                del bucket[self.cap // 2]

    def add_name(self, name: str, *, own: bool = True) -> None:
        collection = name.partition("/")[0]
        if own and collection in self.names:
            self.add(self.names[collection], name)
            if collection == "imports":
                self.add(self.import_ids, name.partition("/")[2])
        elif not own:
            self.add(self.foreign_names, name)

    def everything(self) -> list[str]:
        out = [n for names in self.names.values() for n in names]
        out += self.foreign_names + self.tokens + self.etags + self.columns + self.attributes
        return out + self.filters


@dataclass
class Case:
    """One request to send, with what the fuzzer knows about it."""

    method: Method
    kind: str
    payloads: list[bytes]
    metadata: Metadata | None
    note: str
    text: str
    decodable: bool = True
    # Set when the request must be refused whatever the data: why.
    must_refuse: str = ""
    tenant_label: str = "seeded"


class Fuzzer:
    """Builds cases for the public methods from a seed, the pools and the seeded tenant."""

    def __init__(self, rng: random.Random, pools: Pools, tenant: Tenant, csv_samples: list[bytes]):
        self.rng = rng
        self.pools = pools
        self.tenant = tenant
        self.csv_samples = csv_samples
        self._hints: dict[str, Callable[[Method | None], str]] = {
            "name": self._name_for,
            "master_flow": lambda m: self._own_or_foreign("flows"),
            "flow": lambda m: self._own_or_foreign("flows"),
            "data_import": lambda m: self._own_or_foreign("imports"),
            "asset": lambda m: self._own_or_foreign("assets"),
            "source": lambda m: self._own_or_foreign("assets"),
            "target": lambda m: self._own_or_foreign("assets"),
            "child_flow": lambda m: self._own_or_foreign("childFlows"),
            "page_token": lambda m: self._pick(self.pools.tokens),
            "etag": lambda m: self._pick(self.pools.etags),
            "source_column": lambda m: self._pick(self.pools.columns),
            "remap_to": lambda m: self._pick(self.pools.attributes),
            "waive_required_attributes": lambda m: self._pick(self.pools.attributes),
            "custom_attribute": lambda m: self.rng.choice(["team", "rack_unit", "cost_center"]),
            "filter": lambda m: self._pick(self.pools.filters),
            "request_id": lambda m: self._id(self.pools.request_ids),
            "import_id": lambda m: self.rng.choice(["", "", self._id(self.pools.import_ids)]),
            "file_name": lambda m: self.rng.choice(["fuzz.csv", "inventory.csv", ""]),
            "display_name": lambda m: self.rng.choice(["fuzz flow", "", "Wave 1 — Frankfurt"]),
            "reason": lambda m: self.rng.choice(["fuzzing", "", "operator request"]),
        }

    # ---- real values ------------------------------------------------------------------

    def _pick(self, values: Sequence[str]) -> str:
        return self.rng.choice(values) if values else ""

    def _own_or_foreign(self, collection: str) -> str:
        if self.pools.foreign_names and self.rng.random() < 0.15:
            return self.rng.choice(self.pools.foreign_names)
        return self._pick(self.pools.names.get(collection, [])) or f"{collection}/{uuid.uuid4()}"

    def _id(self, known: list[str]) -> str:
        if known and self.rng.random() < 0.3:
            return self.rng.choice(known)
        fresh = str(uuid.uuid4())
        self.pools.add(known, fresh)
        return fresh

    def _name_for(self, method: Method | None) -> str:
        """The collection a ``name`` field of this method refers to, from the method's name."""
        rest = re.sub(r"^[A-Z][a-z]+", "", method.name) if method else ""
        for singular, collection in _SINGULAR.items():
            if rest.startswith(singular):
                return self._own_or_foreign(collection)
        return self._own_or_foreign(self.rng.choice(("flows", "flows", *COLLECTIONS)))

    def hint(self, name: str, method: Method | None) -> str:
        found = self._hints.get(name)
        return found(method) if found is not None else ""

    # ---- generated values ---------------------------------------------------------------

    def _chars(self, n: int) -> str:
        out = []
        for _ in range(n):
            r = self.rng.random()
            if r < 0.1:
                out.append(self.rng.choice(CONTROL_CHARS))
            elif r < 0.2:
                out.append(self.rng.choice(ODD_CHARS))
            else:
                lo, hi = self.rng.choice(UNICODE_RANGES)
                out.append(chr(self.rng.randint(lo, hi)))
        return "".join(out)

    def corrupt(self, value: str) -> str:
        """A real value, slightly wrong."""
        pos = self.rng.randint(0, len(value))
        choice = self.rng.randrange(12)
        if choice == 0:
            return value[:pos] + "\x00" + value[pos:]
        if choice == 1:
            return value[:pos] + self.rng.choice(CONTROL_CHARS) + value[pos:]
        if choice == 2:
            return self.rng.choice([" ", "\t", "\n", "\u00a0"]) + value + " "
        if choice == 3:
            return value.upper()
        if choice == 4:
            return value[:pos]
        if choice == 5:
            return value + value
        if choice == 6:
            return value + self.rng.choice(["/", "/x", "/..", "?a=1", "#", ":get", "\x00"])
        if choice == 7:
            return value.replace("/", self.rng.choice(["//", "%2F", "\\", "\uff0f"]), 1)
        if choice == 8:
            return value[:pos] + self.rng.choice(ODD_CHARS) + value[pos:]
        if choice == 9:
            return value + "x" * self.rng.choice([1, 200, 5000])
        if choice == 10:
            prefix, _, rest = value.partition("/")
            return f"{prefix}/{self.rng.choice([NIL_UUID, '{' + rest + '}', 'urn:uuid:' + rest])}"
        return unicodedata.normalize("NFKD", value) + "\u0301"

    def name_like(self) -> str:
        collection = self.rng.choice([*COLLECTIONS, "Flows", "flow", "", "rows", "imports/x"])
        ident = self.rng.choice(
            [
                str(uuid.uuid4()),
                NIL_UUID,
                str(uuid.uuid4()).upper(),
                "{" + str(uuid.uuid4()) + "}",
                "urn:uuid:" + str(uuid.uuid4()),
                uuid.uuid4().hex,
                str(uuid.uuid4()) + "/rows/1",
                "",
                "-1",
                str(2**63),
                *BAD_UUIDS,
                self._chars(8),
            ]
        )
        return f"{collection}/{ident}"

    def forged_token(self, method: Method | None) -> tuple[str, bool]:
        """A page token the server never issued: a real one (of this method, mostly) whose
        JSON content is changed (the second value says so), or made-up text."""
        body: dict[str, Any] | None = None
        own = self.pools.continuations.get(method.path, []) if method else []
        tokens = [t for _, t in own] if own and self.rng.random() < 0.8 else self.pools.tokens
        if tokens:
            real = self.rng.choice(tokens)
            try:
                parsed = json.loads(base64.urlsafe_b64decode(real + "=" * (-len(real) % 4)))
            except (ValueError, binascii.Error):
                parsed = None
            if isinstance(parsed, dict):
                body = parsed
        if body is None:
            return self.rng.choice(["garbage!", "e30=", "bnVsbA==", "AAAA", "%%%", "=" * 8]), False
        forged = dict(body)
        if not forged or self.rng.random() < 0.05:
            # An extra key changes no position: a server may fairly ignore it.
            forged["extra"] = "x"
            return base64.urlsafe_b64encode(json.dumps(forged).encode()).decode(), False
        key = self.rng.choice(list(forged))
        weird: list[Any] = [
            None,
            -1,
            0,
            1.5,
            2**63,
            2**64 + 7,
            10**30,
            -(2**63) - 1,
            "",
            "x",
            "\x00",
            "9999-12-31T23:59:59.999999+14:00",
            "0001-01-01T00:00:00",
            "2024-01-01T00:00:00",
            "2024-02-30T00:00:00+00:00",
            "1970-01-01T00:00:00+00:00",
            "2999-01-01T00:00:00+00:00",
            "not a date",
            NIL_UUID,
            str(uuid.uuid4()),
            "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
            "\U0010ffff" * 3,
            "a" * 5000,
            [1, 2],
            {"a": 1},
        ]
        plausible: dict[str, Any] = {
            "t": "2020-01-01T00:00:00+00:00",
            "id": str(uuid.uuid4()),
            "after": self.rng.randint(0, 40),
            "name": self.rng.choice(["a", "zzz", "web01"]),
        }
        if self.rng.random() < 0.1:
            forged.pop(key)
        elif key in plausible and self.rng.random() < 0.5:
            forged[key] = plausible[key]
        else:
            forged[key] = self.rng.choice(weird)
        text = json.dumps(forged).encode()
        # Forged only if what the server wrote was changed (not merely re-spelled).
        changed = json.dumps(forged, sort_keys=True) != json.dumps(body, sort_keys=True)
        return base64.urlsafe_b64encode(text).decode(), changed

    def string(self, name: str, method: Method | None) -> tuple[str, str]:
        """A generated string for field ``name``, and a note when it makes the request one
        that must be refused."""
        r = self.rng.random()
        if r < 0.22:
            return self.hint(name, method) or self._pick(self.pools.everything()), ""
        if r < 0.27:
            return "", ""
        if r < 0.37:
            return self.corrupt(self.hint(name, method) or self._pick(self.pools.everything())), ""
        if name == PAGE_TOKEN and r < 0.7:
            token, forged = self.forged_token(method)
            return token, "forged page_token" if forged else ""
        kind = self.rng.randrange(11)
        if kind == 0:
            alphabet = string.printable
            return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(1, 30))), ""
        if kind == 1:
            return self._chars(self.rng.randint(1, 40)), ""
        if kind == 2:
            base = self.hint(name, method) or "x"
            return base + "\x00" * self.rng.randint(1, 3), ""
        if kind == 3:
            return "".join(
                self.rng.choice(CONTROL_CHARS) for _ in range(self.rng.randint(1, 8))
            ), ""
        if kind == 4:
            n = self.rng.choice([199, 200, 201, 255, 256, 499, 500, 501, 1024, 2800, 10_000])
            if self.rng.random() < 0.02:
                n = self.rng.choice([100_000, 1_000_000])
            fill = self.rng.choice(["x", "é", "\U0001f600", "a\x00", "\u0301"])
            return (fill * n)[:n], ""
        if kind == 5:
            return self.name_like(), ""
        if kind == 6:
            return self.rng.choice(INJECTIONS), ""
        if kind == 7:
            value = self.rng.choice([-1, 0, 2**31, 2**63, -(2**63) - 1, 1e400, "1e309", "0x10"])
            return str(value), ""
        if kind == 8:
            words = [self.rng.choice(FILTER_WORDS) for _ in range(self.rng.randint(1, 8))]
            return " ".join(words), ""
        if kind == 9:
            if self.rng.random() < 0.5:
                odd = chr(self.rng.choice([0x7F, 0x80, 0x85, 0x9B, 0x9F]))
                return f"{self.hint(name, method) or 'fuzz'}{odd}text", ""
            return self.rng.choice(["\u202e" + "fuzz", "\ufeff", " ", "\t\n", "\u2028"]), ""
        return self.rng.choice([*BAD_UUIDS, NIL_UUID, str(uuid.uuid4()).upper()]), ""

    def integer(self, f: FieldDesc) -> int:
        lo, hi = INT_RANGES.get(f.type, (-(2**31), 2**31 - 1))
        if self.rng.random() < 0.75:
            candidates = [v for v in INT_SPECIALS if lo <= v <= hi] + [lo, hi]
            return int(self.rng.choice(candidates))
        return self.rng.randint(lo, hi)

    def enum(self, f: FieldDesc) -> int:
        defined: list[int] = [v.number for v in f.enum_type.values]
        r = self.rng.random()
        if r < 0.5:
            return self.rng.choice(defined)
        if r < 0.65:
            return 0
        return self.rng.choice([max(defined) + 1, 99, -1, 2**31 - 1, -(2**31), 1000])

    def double(self) -> float:
        if self.rng.random() < 0.8:
            return self.rng.choice(DOUBLE_SPECIALS)
        return self.rng.uniform(-2.0, 2.0)

    def csv_document(self) -> bytes:
        """A CSV upload: a real sample, a sample with damage, or generated rows."""
        r = self.rng.random()
        sample = self.rng.choice(self.csv_samples)
        if r < 0.25:
            return sample
        if r < 0.5:
            data = bytearray(sample[: self.rng.randint(0, len(sample))])
            for _ in range(self.rng.randint(1, 5)):
                pos = self.rng.randint(0, len(data))
                junk = self.rng.choice(
                    [
                        b"\x00",
                        b"\xff\xfe",
                        b"\xc3\x28",
                        b'"',
                        b"\r",
                        b"\n\n",
                        b",,,",
                        b"\xef\xbb\xbf",
                    ]
                )
                data[pos:pos] = junk
            return bytes(data)
        delimiter = self.rng.choice([",", ";", "\t", "|"])
        header = self.pools.columns[:9] if self.pools.columns else ["Server Name", "IP Addr"]
        if self.rng.random() < 0.3:
            header = [self.string("source_column", None)[0] for _ in range(3)]
        lines = [delimiter.join(header)]
        for _ in range(self.rng.randint(0, 6)):
            cells = []
            for _ in range(len(header) + self.rng.choice([0, 0, 0, 1, -1])):
                cell = self.rng.choice(
                    [
                        "web01.corp.example.com",
                        "10.0.0.1",
                        "Production",
                        "",
                        # over-long key cells, random so that compression does not shrink them
                        "".join(self.rng.choices(string.ascii_letters, k=self.rng.choice(LONG))),
                        self._chars(self.rng.randint(1, 12)),
                        '"quoted, with delimiter"',
                        '"unterminated',
                        "\x00",
                    ]
                )
                cells.append(cell)
            lines.append(delimiter.join(cells))
        text = "\n".join(lines)
        encoding = self.rng.choice(["utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"])
        return text.encode(encoding, errors="replace")

    def raw_bytes(self) -> bytes:
        r = self.rng.random()
        if r < 0.4:
            return self.csv_document()
        if r < 0.7:
            return self.rng.randbytes(self.rng.randint(0, 64))
        return self.rng.choice([b"", b"\x00", b"\xff" * 16, "ü".encode("latin-1"), b"\xef\xbb\xbf"])

    def timestamp(self, msg: message.Message) -> None:
        msg.CopyFrom(
            timestamp_pb2.Timestamp(
                seconds=self.rng.choice(TS_SECONDS), nanos=self.rng.choice(TS_NANOS)
            )
        )

    # ---- messages -------------------------------------------------------------------------

    def scalar(self, f: FieldDesc, method: Method, notes: list[str]) -> object | None:
        if f.type == FD.TYPE_STRING:
            value, note = self.string(f.name, method)
            if note:
                notes.append(note)
            return value
        if f.type == FD.TYPE_BYTES:
            return self.raw_bytes()
        if f.type == FD.TYPE_BOOL:
            return self.rng.random() < 0.5
        if f.type == FD.TYPE_ENUM:
            return self.enum(f)
        if f.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
            return self.double()
        if f.type in INT_RANGES:
            return self.integer(f)
        return None

    def fill(
        self,
        msg: message.Message,
        f: FieldDesc,
        method: Method,
        depth: int,
        notes: list[str],
    ) -> None:
        """Set field ``f`` of ``msg`` to generated values."""
        container: Any = getattr(msg, f.name)
        try:
            if is_map(f):
                key_f = f.message_type.fields_by_name["key"]
                value_f = f.message_type.fields_by_name["value"]
                for _ in range(self.rng.choice([0, 1, 2, 5])):
                    key = self.scalar(key_f, method, notes)
                    if value_f.type == FD.TYPE_MESSAGE:
                        container[key].CopyFrom(self.scratch(value_f.message_type, method, depth))
                    else:
                        container[key] = self.scalar(value_f, method, notes)
            elif f.is_repeated:
                n = self.rng.choice([0, 1, 1, 2, 3, 5, 30])
                for _ in range(n):
                    if f.type == FD.TYPE_MESSAGE:
                        container.add().CopyFrom(self.scratch(f.message_type, method, depth + 1))
                    else:
                        container.append(self.scalar(f, method, notes))
            elif f.type == FD.TYPE_MESSAGE:
                if depth < MAX_DEPTH:
                    container.CopyFrom(self.scratch(f.message_type, method, depth + 1, notes))
            else:
                setattr(msg, f.name, self.scalar(f, method, notes))
        except (ValueError, TypeError, OverflowError):
            msg.ClearField(f.name)

    def scratch(
        self,
        desc: MessageDesc,
        method: Method,
        depth: int = 0,
        notes: list[str] | None = None,
    ) -> message.Message:
        """A message generated field by field, each field set with probability 0.6."""
        notes = [] if notes is None else notes
        msg = message_class(desc)()
        if desc.full_name == "google.protobuf.Timestamp":
            self.timestamp(msg)
            return msg
        chosen = {o.name: self.rng.choice([None, *o.fields]) for o in desc.oneofs}
        for f in desc.fields:
            oneof = f.containing_oneof
            if oneof is not None and not oneof.name.startswith("_"):
                if chosen[oneof.name] is not f:
                    continue
            elif self.rng.random() < 0.4:
                continue
            self.fill(msg, f, method, depth, notes)
        return msg

    def template(
        self,
        desc: MessageDesc,
        method: Method,
        depth: int = 0,
        oneof_pick: int | None = None,
    ) -> message.Message:
        """A plausible valid request: real values where the field's name says what it holds,
        a defined enum value, nested messages one level down, the rest left at default; for a
        paginated method, often a request that got a next_page_token, with that token."""
        msg = message_class(desc)()
        continuations = self.pools.continuations.get(method.path) if depth == 0 else None
        if continuations and desc is method.input.DESCRIPTOR and self.rng.random() < 0.5:
            request, token = self.rng.choice(continuations)
            msg.MergeFromString(request)
            setattr(msg, PAGE_TOKEN, token)
            return msg
        chosen: dict[str, FieldDesc] = {}
        for o in desc.oneofs:
            members = list(o.fields)
            pick = members[min(oneof_pick, len(members) - 1)] if oneof_pick is not None else None
            chosen[o.name] = pick or self.rng.choice(members)
        for f in desc.fields:
            oneof = f.containing_oneof
            if oneof is not None and chosen.get(oneof.name) is not f:
                continue
            if f.type == FD.TYPE_MESSAGE:
                if is_map(f) or depth >= 1:
                    continue
                if f.is_repeated:
                    if self.rng.random() < 0.5:
                        item: Any = getattr(msg, f.name).add()
                        item.CopyFrom(self.template(f.message_type, method, depth + 1))
                elif f.message_type.full_name != "google.protobuf.Timestamp":
                    sub = self.template(f.message_type, method, depth + 1)
                    getattr(msg, f.name).CopyFrom(sub)
                continue
            if f.is_repeated:
                values = [self.hint(f.name, method) for _ in range(self.rng.choice([0, 1, 2]))]
                if f.type == FD.TYPE_STRING:
                    getattr(msg, f.name).extend(v for v in values if v)
                continue
            if f.type == FD.TYPE_STRING:
                setattr(msg, f.name, self.hint(f.name, method))
            elif f.type == FD.TYPE_ENUM:
                defined = [v.number for v in f.enum_type.values if v.number != 0]
                setattr(msg, f.name, self.rng.choice(defined or [0]))
            elif f.type == FD.TYPE_BOOL:
                setattr(msg, f.name, oneof is not None or self.rng.random() < 0.25)
            elif f.type == FD.TYPE_BYTES:
                setattr(msg, f.name, self.csv_document())
            elif f.type in INT_RANGES and f.name == "page_size":
                setattr(msg, f.name, self.rng.choice([0, 1, 2, 5, 50]))
        return msg

    def mutate(self, msg: message.Message, method: Method) -> tuple[str, list[str]]:
        """Replace one field, at any depth, with a generated value; its path and notes."""
        notes: list[str] = []
        path: list[str] = []
        current = msg
        for depth in range(MAX_DEPTH):
            fields: list[FieldDesc] = list(current.DESCRIPTOR.fields)
            set_fields: list[FieldDesc] = [f for f, _ in current.ListFields()]
            f = self.rng.choice(set_fields if set_fields and self.rng.random() < 0.7 else fields)
            path.append(f.name)
            descend = (
                f.type == FD.TYPE_MESSAGE
                and not f.is_repeated
                and f.message_type.full_name != "google.protobuf.Timestamp"
                and self.rng.random() < 0.7
            )
            if descend:
                current = getattr(current, f.name)
                continue
            if f.containing_oneof is not None:
                current.ClearField(f.containing_oneof.name)
            current.ClearField(f.name)
            self.fill(current, f, method, depth, notes)
            break
        return ".".join(path), notes

    # ---- cases --------------------------------------------------------------------------

    def metadata(self) -> tuple[Metadata | None, str, bool]:
        """Tenant metadata built from ``md``, perhaps broken: (metadata, note, must refuse)."""
        base: list[tuple[str, str | bytes]] = list(md(self.tenant))
        header = self.rng.choice(TENANT_HEADERS)
        value = dict(md(self.tenant))[header]
        choice = self.rng.randrange(15)
        if choice == 13:
            without = tuple(kv for kv in base if kv[0] != "authorization")
            return without, "no bearer token", True
        if choice == 14:
            token = self.rng.choice(["", "fp_" + "x" * 43, "a.b.c", "e30.e30.", "Zm9v" * 30])
            forged = tuple((k, f"Bearer {token}" if k == "authorization" else v) for k, v in base)
            return forged, f"bearer token {token[:20]!r}", True
        if choice == 0:
            return None, "no metadata at all", True
        if choice == 1:
            kept = tuple(kv for kv in base if kv[0] not in TENANT_HEADERS)
            return kept, "no tenant headers", True
        if choice == 2:
            # x-user-id is optional on the public API: the token's principal is the user.
            missing = tuple(kv for kv in base if kv[0] != header)
            return missing, f"{header} missing", header != USER_HEADER
        if choice in (3, 4):
            bad = self.rng.choice(["", *BAD_UUIDS])
            swapped = tuple((k, bad if k == header else v) for k, v in base)
            return swapped, f"{header}={bad[:40]!r}", True
        if choice == 5:
            swapped = tuple((k, NIL_UUID if k == header else v) for k, v in base)
            return swapped, f"{header} is the nil UUID", True
        if choice in (6, 7):
            other = str(uuid.uuid4())
            dup = (*base, (header, other)) if choice == 6 else ((header, other), *base)
            return dup, f"{header} twice with different values", True
        if choice == 8:
            return (*base, (header, value)), f"{header} twice with the same value", False
        if choice == 9:
            spelling = self.rng.choice(
                [value.upper(), "{" + value + "}", "urn:uuid:" + value, value.replace("-", "")]
            )
            swapped = tuple((k, spelling if k == header else v) for k, v in base)
            return swapped, f"{header} spelled {spelling!r}", False
        if choice == 10:
            junk: tuple[tuple[str, str | bytes], ...] = (
                ("x-junk", "1"),
                ("x-junk-bin", self.rng.randbytes(16)),
                ("x-message-id", self.rng.choice(["nope", str(uuid.uuid4())])),
            )
            return (*base, *junk), "extra headers", False
        if choice == 11:
            fresh = Tenant(uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
            return md(fresh), "a new tenant", False
        # Same account and engagement, another user: still the seeded tenant's data.
        swapped = tuple((k, str(uuid.uuid4()) if k == TENANT_HEADERS[2] else v) for k, v in base)
        return swapped, "another user of the tenant", False

    def _stream_messages(self, method: Method, kind: str) -> tuple[list[message.Message], str]:
        """A client stream: the first message sets the first oneof member (``metadata`` of
        an upload), the next ones the later members (``chunk``); bytes fields of the later
        messages carry consecutive slices of one document."""
        desc = method.input.DESCRIPTOR
        if kind == "scratch":
            n = self.rng.choice([0, 1, 1, 2, 3, 4])
            return [self.scratch(desc, method) for _ in range(n)], "generated stream"
        first = self.template(desc, method, oneof_pick=0)
        rest = [self.template(desc, method, oneof_pick=1) for _ in range(self.rng.randint(1, 3))]
        bytes_fields = [f for f in desc.fields if f.type == FD.TYPE_BYTES and not f.is_repeated]
        if bytes_fields and rest:
            f = bytes_fields[0]
            doc = self.csv_document()
            cuts = sorted(self.rng.randint(0, len(doc)) for _ in range(len(rest) - 1))
            bounds = [0, *cuts, len(doc)]
            for i, m in enumerate(rest):
                setattr(m, f.name, doc[bounds[i] : bounds[i + 1]])
        messages = [first, *rest]
        if kind not in ("mutant", "probe"):
            return messages, "plausible stream"
        r = self.rng.random()
        if r < 0.6:
            i = self.rng.randrange(len(messages))
            path, _ = self.mutate(messages[i], method)
            return messages, f"message {i}: {path}"
        if r < 0.7:
            return messages[1:], "without its first message"
        if r < 0.8:
            return [*messages, first], "first message repeated at the end"
        if r < 0.9:
            return [first], "first message only"
        return list(reversed(messages)), "messages reversed"

    def raw(self, method: Method) -> tuple[bytes, str]:
        """Bytes that are not (quite) an encoding of the method's request."""
        desc = method.input.DESCRIPTOR
        valid = self.template(desc, method).SerializeToString()
        strings = [f for f in desc.fields if f.type == FD.TYPE_STRING] or list(desc.fields)
        number = self.rng.choice(strings).number if strings else 1
        tag_len = _varint((number << 3) | 2)
        choice = self.rng.randrange(12)
        if choice == 0:
            return self.rng.randbytes(self.rng.randint(1, 64)), "random bytes"
        if choice == 1 and len(valid) > 1:
            return valid[: self.rng.randint(1, len(valid) - 1)], "truncated request"
        if choice == 2:
            bad = self.rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"a\xfe\xff", b"\x80"])
            return valid + tag_len + _varint(len(bad)) + bad, "invalid UTF-8 in a string field"
        if choice == 3:
            return valid + tag_len + _varint(2**31) + b"abc", "length past the end"
        if choice == 4:
            return valid + bytes([0x08]) + b"\xff" * 11, "varint longer than 10 bytes"
        if choice == 5:
            depth = self.rng.choice([50, 101, 200, 1000])
            groups = _varint((99 << 3) | 3) * depth + _varint((99 << 3) | 4) * depth
            return valid + groups, f"{depth} nested groups"
        if choice == 6:
            return valid + _varint((7 << 3) | 4), "end-group without start"
        if choice == 7:
            return b"\x00\x01" + valid, "field number 0"
        if choice == 8:
            return valid + _varint((number << 3) | 0) + _varint(1), "varint for a string field"
        if choice == 9:
            extra = _varint((1000 << 3) | 2) + _varint(5) + b"hello" + _varint(536870911 << 3)
            return valid + extra + _varint(1), "unknown fields"
        if choice == 10:
            return valid + valid, "request concatenated with itself"
        return bytes(self.rng.randint(0, 255) for _ in range(2)) + valid, "two junk bytes first"

    def probe(self, msg: message.Message, method: Method) -> tuple[str, list[str], bool] | None:
        """Break a plausible request in one way that must get it refused whatever the data:
        a control character in a ``display_name`` (sent as a new tenant, which no other flow
        of its engagement holds back), or a forged ``page_token`` (as the seeded tenant). The
        note, the generator's notes and whether to send it as a new tenant; None if the
        request has neither field."""
        targets: list[tuple[message.Message, FieldDesc]] = []
        fields: list[FieldDesc] = list(msg.DESCRIPTOR.fields)
        for f in fields:
            if f.name == PAGE_TOKEN and f.type == FD.TYPE_STRING:
                targets.append((msg, f))
            elif f.type == FD.TYPE_MESSAGE and not f.is_repeated:
                sub = f.message_type.fields_by_name.get("display_name")
                if sub is not None and sub.type == FD.TYPE_STRING:
                    targets.append((getattr(msg, f.name), sub))
            if f.name == "display_name" and f.type == FD.TYPE_STRING:
                targets.append((msg, f))
        if not targets:
            return None
        parent, f = self.rng.choice(targets)
        if f.name == PAGE_TOKEN:
            token, forged = self.forged_token(method)
            setattr(parent, f.name, token)
            return "forged page_token", ["forged page_token"] if forged else [], False
        odd = chr(self.rng.choice([0x7F, 0x80, 0x85, 0x8D, 0x9B, 0x9F]))
        setattr(parent, f.name, f"Wave 1{odd}Frankfurt")
        return f"display_name with U+{ord(odd):04X}", [], True

    def case(self, method: Method, kind: str) -> Case:
        desc = method.input.DESCRIPTOR
        metadata: Metadata | None = md(self.tenant)
        must_refuse: list[str] = []
        tenant_label = "seeded"
        note = ""
        if kind == "metadata":
            metadata, note, bad = self.metadata()
            if bad:
                must_refuse.append(f"bad tenant metadata ({note})")
                tenant_label = "none"
            elif note in ("a new tenant",):
                tenant_label = "other"
        if kind == "raw":
            if method.client_streaming:
                first = self.template(desc, method, oneof_pick=0).SerializeToString()
                junk, note = self.raw(method)
                payloads = [first, junk] if self.rng.random() < 0.5 else [junk]
            else:
                junk, note = self.raw(method)
                payloads = [junk]
            decodable = all(_decodes(method, p) for p in payloads)
            text = " | ".join(p[:120].hex() for p in payloads)
            return Case(method, kind, payloads, metadata, note, text, decodable, "", tenant_label)
        notes: list[str] = []
        if method.client_streaming:
            messages, note_ = self._stream_messages(method, kind)
            note = note or note_
        elif kind == "scratch":
            messages = [self.scratch(desc, method, notes=notes)]
            note = "generated"
        else:
            messages = [self.template(desc, method)]
            probe = self.probe(messages[0], method) if kind == "probe" else None
            if probe is not None:
                note, notes, fresh = probe
                if fresh:
                    metadata = md(Tenant(uuid.uuid4(), uuid.uuid4(), uuid.uuid4()))
                    tenant_label = "other"
            elif kind in ("mutant", "probe"):
                path, notes = self.mutate(messages[0], method)
                note = f"mutated {path}"
        if any("forged page_token" in n for n in notes) and _has_forged_token(messages, self.pools):
            must_refuse.append("a forged page_token")
        if any(_control_chars_in_display_name(m) for m in messages):
            must_refuse.append("control characters in display_name")
        payloads = []
        for m in messages:
            try:
                payloads.append(m.SerializeToString())
            except Exception:  # e.g. a string the encoder refuses: send what we can
                payloads.append(b"")
        text = " | ".join(render(m) for m in messages) or "<empty stream>"
        return Case(
            method, kind, payloads, metadata, note, text, True, "; ".join(must_refuse), tenant_label
        )


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _decodes(method: Method, payload: bytes) -> bool:
    try:
        method.input.FromString(payload)
    except Exception:
        return False
    return True


def _has_forged_token(messages: list[message.Message], pools: Pools) -> bool:
    for m in messages:
        has_token = PAGE_TOKEN in m.DESCRIPTOR.fields_by_name
        token = getattr(m, PAGE_TOKEN) if has_token else ""
        if token and token not in pools.tokens:
            return True
    return False


def _control_chars_in_display_name(msg: message.Message) -> bool:
    """Whether a set ``display_name`` anywhere in ``msg`` has a control character (Cc)."""
    for f, value in msg.ListFields():
        if f.name == "display_name" and isinstance(value, str):
            if any(unicodedata.category(c) == "Cc" for c in value):
                return True
        elif (
            f.type == FD.TYPE_MESSAGE
            and not f.is_repeated
            and (_control_chars_in_display_name(value))
        ):
            return True
    return False
