"""Value-kind patterns for column profiling, usable both in PostgreSQL and in Python.

The data-validation phase classifies every value of an imported inventory CSV *inside*
PostgreSQL (set-based over millions of rows), so each kind is defined by one regular-expression
source string that PostgreSQL runs as ``value ~* pg_regex`` and Python runs as
``py_regex.fullmatch(value)``. One string serves both, so it is written in the subset that
PostgreSQL's ARE flavour and Python's ``re`` read the same way:

* ``[0-9]`` rather than ``\\d``; no ``\\b``, ``\\w``, ``\\s``, no lookarounds, no backreferences;
* ``(?:...)``, alternation, bracket expressions and ``{m,n}`` (``n`` at most 255, PostgreSQL's
  ``RE_DUP_MAX``) are fine;
* every string is anchored ``^(?:...)$``.

The Python side is compiled with ``IGNORECASE | ASCII | DOTALL`` so that it behaves like ``~*``:
``ASCII`` keeps case folding to A-Z/a-z (Python would otherwise let ``[a-z]`` match the Kelvin
sign or a dotless i), and ``DOTALL`` because ARE's ``.`` matches a newline by default. Python's
``$`` also matches before a trailing newline, which is why callers use ``fullmatch``.

:func:`classify` strips the value first; the SQL equivalent is
``btrim(v, E' \\t\\n\\r\\f\\v') ~* pg_regex`` (``str.strip`` also removes non-ASCII whitespace
such as NO-BREAK SPACE, which an ASCII ``btrim`` keeps).

Kinds overlap on purpose (``"yes"`` is BOOLEAN and HOSTNAME, ``"8.6"`` is DECIMAL): the profile
decides a column's kind from the ratios of matching values together with its header name.
DNS length limits (63 characters per label, 253 per name) are not enforced by HOSTNAME, FQDN
or EMAIL. Counting them without lookaheads takes bounded repetitions, which PostgreSQL's engine
pays for on every row (measured on PostgreSQL 18 over a million values: the uncapped HOSTNAME
0.2 s, with a 63-character cap enumerated per first-letter position 19 s), and over-long labels
do not occur in server inventories.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class ValueKind(enum.Enum):
    """The kinds a column value can be recognised as; ``value`` is the stable API/JSON name."""

    INTEGER = "integer"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    DATE = "date"
    IPV4 = "ipv4"
    IPV6 = "ipv6"
    FQDN = "fqdn"
    HOSTNAME = "hostname"
    OS = "os"
    SIZE = "size"
    EMAIL = "email"
    UUID = "uuid"


@dataclass(frozen=True)
class Pattern:
    """One kind's regex: ``pg_regex`` for ``value ~* pg_regex``; ``py_regex`` for ``fullmatch``.

    ``py_regex`` is compiled from ``pg_regex`` itself, so the two cannot drift apart.
    """

    kind: ValueKind
    pg_regex: str
    py_regex: re.Pattern[str]


# ``~*`` semantics, see the module docstring for why each flag is needed.
_PY_FLAGS = re.IGNORECASE | re.ASCII | re.DOTALL


def _make(kind: ValueKind, body: str) -> Pattern:
    # The group keeps a top-level alternation inside the anchors.
    source = f"^(?:{body})$"
    return Pattern(kind=kind, pg_regex=source, py_regex=re.compile(source, _PY_FLAGS))


def _alt(*parts: str) -> str:
    return "(?:" + "|".join(parts) + ")"


# --- numbers ---------------------------------------------------------------------------------

# Thousands separators are not accepted: "1,024" is ambiguous with a CSV split and with a
# European decimal comma.
_INTEGER = r"[+-]?[0-9]+"

# A dot with digits after it ("12.5", "-0.75", ".5"), or scientific notation as spreadsheets
# export it ("1.5E+03", "1e5"). "12." is not accepted: it reads like list numbering. Plain
# integers are excluded so that INTEGER and DECIMAL are disjoint.
_DECIMAL = r"[+-]?(?:[0-9]*\.[0-9]+(?:e[+-]?[0-9]+)?|[0-9]+e[+-]?[0-9]+)"

# Only the words: 0/1 are INTEGER, and single letters t/f are too vague to claim.
_BOOLEAN = r"true|false|yes|no|y|n"

# --- dates -----------------------------------------------------------------------------------

_DAY = r"(?:0?[1-9]|[12][0-9]|3[01])"
_MONTH = r"(?:0?[1-9]|1[0-2])"
# ISO dates always use two-digit fields.
_ISO_DAY = r"(?:0[1-9]|[12][0-9]|3[01])"
_ISO_MONTH = r"(?:0[1-9]|1[0-2])"
_YEAR = r"[0-9]{4}"
_MONTH_NAME = _alt(
    r"jan(?:uary)?",
    r"feb(?:ruary)?",
    r"mar(?:ch)?",
    r"apr(?:il)?",
    r"may",
    r"june?",
    r"july?",
    r"aug(?:ust)?",
    r"sep(?:t(?:ember)?)?",
    r"oct(?:ober)?",
    r"nov(?:ember)?",
    r"dec(?:ember)?",
)
_HHMM = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]"
# ISO 8601 / RFC 3339 time: seconds and fractions optional; "Z" or an offset ("+02", "+0200",
# "+02:00", the last being how PostgreSQL itself prints timestamptz).
_ISO_TIME = (
    rf"{_HHMM}(?::[0-5][0-9](?:[.,][0-9]{{1,9}})?)?"
    r"(?: ?(?:z|[+-](?:[01][0-9]|2[0-3])(?::?[0-5][0-9])?))?"
)
# Spreadsheet exports append a local time, often 12-hour with a one-digit hour.
_LOCAL_TIME = r"(?:[01]?[0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9])?(?: ?[ap]m)?"

_DATE = _alt(
    # 2024-01-31, 2024-01-31T10:00:00Z, 2024-01-31 10:00:00+02:00
    rf"{_YEAR}-{_ISO_MONTH}-{_ISO_DAY}(?:[t ]{_ISO_TIME})?",
    # 2024/01/31, 2024.01.31
    rf"{_YEAR}/{_MONTH}/{_DAY}(?: {_LOCAL_TIME})?",
    rf"{_YEAR}\.{_MONTH}\.{_DAY}(?: {_LOCAL_TIME})?",
    # 31/01/2024 and 01/31/2024 (day-first and month-first cannot be told apart per value, so
    # both orders are accepted, but never a 13th month), also with "." and "-".
    *(
        rf"(?:{_DAY}{sep}{_MONTH}|{_MONTH}{sep}{_DAY}){sep}{_YEAR}(?: {_LOCAL_TIME})?"
        for sep in ("/", r"\.", "-")
    ),
    # 31-Jan-2024, 31 January 2024, 31-JAN-24 (Oracle's DD-MON-RR): the month name makes a
    # two-digit year unambiguous.
    rf"{_DAY}[- ]{_MONTH_NAME}[- ](?:[0-9]{{2}}){{1,2}}",
    # Jan 31, 2024 / January 31 2024 / Sept. 5, 2024
    rf"{_MONTH_NAME}\.? {_DAY},? {_YEAR}",
)

# --- network ---------------------------------------------------------------------------------

# 0-255; leading zeros ("010") are tolerated because zero-padded inventories exist.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9]?[0-9])"
_IPV4_ADDR = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_IPV4 = rf"{_IPV4_ADDR}(?:/(?:3[0-2]|[12]?[0-9]))?"


def _ipv6_address() -> str:
    """Every RFC 4291 text form, enumerated by how many groups precede the ``::``.

    Without lookaheads the "at most 8 groups" rule has to be spelt out per split point.
    """
    h = "[0-9a-f]{1,4}"
    forms = [rf"(?:{h}:){{7}}{h}"]  # full form: exactly 8 groups, no "::"
    # "::" stands for at least one zero group, so at most 7 explicit groups remain.
    forms.append(rf"::(?:{h}(?::{h}){{0,6}})?")
    for left in range(1, 8):
        right = 7 - left
        tail = rf"(?:{h}(?::{h}){{0,{right - 1}}})?" if right else ""
        forms.append(rf"(?:{h}:){{{left}}}:{tail}")
    # An IPv4 tail counts as two groups (::ffff:192.0.2.1, 64:ff9b::192.0.2.1).
    forms.append(rf"(?:{h}:){{6}}{_IPV4_ADDR}")
    forms.append(rf"::(?:{h}:){{0,5}}{_IPV4_ADDR}")
    for left in range(1, 6):
        forms.append(rf"(?:{h}:){{{left}}}:(?:{h}:){{0,{5 - left}}}{_IPV4_ADDR}")
    return _alt(*forms)


# A zone index ("fe80::1%eth0") is how link-local addresses appear in host exports.
_IPV6 = _ipv6_address() + r"(?:%[0-9a-z._-]+)?(?:/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))?"

# RFC 1123 label: [a-z0-9-], not starting or ending with "-". No 63-character cap and no
# 63-letter cap on the TLD: counting is what makes a pattern slow in PostgreSQL (module docstring).
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
# The last label must be letters so that IPv4 addresses and decimals ("12.5") never qualify.
_DOMAIN = rf"(?:{_LABEL}\.)+[a-z]{{2,}}"
# An absolute name ("host.example.com.") is still a host name.
_FQDN = rf"{_DOMAIN}\.?"

# One label with at least one letter, so never an integer: either the letter comes first, or
# digits and hyphens (starting with a digit) lead up to it.
_HOSTNAME = r"(?:[a-z]|[0-9][0-9-]*[a-z])(?:[a-z0-9-]*[a-z0-9])?"

# --- operating systems -----------------------------------------------------------------------

# Family names. Each must start a word (string start or a non-alphanumeric before it) and must
# not run on into more letters, which is what keeps "Production", "Aisles" or "Windowsill"
# out while "RHEL8", "CentOS-7" and "Windows(R)" still count. Digits may follow directly.
_OS_WORDS = _alt(
    r"windows",
    r"win ?(?:nt|xp|vista)",
    r"rhel",
    r"red ?hat",
    r"centos",
    # Alone, "Rocky" and "Alma" are people and places: require "linux" or a version.
    r"(?:rocky|alma) ?(?:linux|[0-9])",
    r"ubuntu",
    r"debian",
    r"(?:open)?suse",
    r"sles",
    r"fedora",
    r"linux",  # also Oracle Linux, Amazon Linux, "Other Linux (64-bit)"
    r"solaris",
    r"sunos",
    r"hp[- ]?ux",
    r"(?:free|open|net)bsd",
    r"esxi?",  # VMware ESX/ESXi
    r"mac ?os",
    r"os ?x",
)
# Version-style Windows short names end in a digit, so they must not run on into more digits
# ("Win 100" is not Windows 10); letters may follow ("Win2012R2").
_OS_WIN_VERSIONS = _alt(r"win2k[0-9]{0,2}", r"win ?20[0-9]{2}", r"win ?(?:7|8\.1|8|10|11)")
# "AIX 7.2" but not "Aix-en-Provence", a site name: no letters and no hyphen after it.
_OS = r"(?:.*[^a-z0-9])?" + _alt(
    rf"{_OS_WORDS}(?:[^a-z].*)?",
    rf"{_OS_WIN_VERSIONS}(?:[^0-9].*)?",
    r"aix(?:[^a-z-].*)?",
)

# --- the rest --------------------------------------------------------------------------------

# Amount then unit, optional spaces. Thousands groups and a decimal comma are fine here because
# the unit already rules out a CSV split ("1,024 MB", "1,5 GB"). Units: SI and IEC prefixes
# ("GB", "GiB", "G", Kubernetes' "Gi"), plain bytes, and spelt-out words.
_SIZE = (
    r"[0-9]+(?:,[0-9]{3})*(?:[.,][0-9]+)? *"
    r"(?:[kmgtp]i?b?|b|bytes?|(?:kilo|mega|giga|tera|peta)bytes?)"
)

# Deliberately simple: a common local-part alphabet, then a domain as for FQDN.
_EMAIL = rf"[a-z0-9._%+'-]+@{_DOMAIN}"

# 8-4-4-4-12 hex, also in the braces Windows tools print ({...}).
_UUID_BODY = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_UUID = _alt(_UUID_BODY, f"[{{]{_UUID_BODY}[}}]")


PATTERNS: tuple[Pattern, ...] = (
    _make(ValueKind.INTEGER, _INTEGER),
    _make(ValueKind.DECIMAL, _DECIMAL),
    _make(ValueKind.BOOLEAN, _BOOLEAN),
    _make(ValueKind.DATE, _DATE),
    _make(ValueKind.IPV4, _IPV4),
    _make(ValueKind.IPV6, _IPV6),
    _make(ValueKind.FQDN, _FQDN),
    _make(ValueKind.HOSTNAME, _HOSTNAME),
    _make(ValueKind.OS, _OS),
    _make(ValueKind.SIZE, _SIZE),
    _make(ValueKind.EMAIL, _EMAIL),
    _make(ValueKind.UUID, _UUID),
)
"""Every :class:`ValueKind` exactly once, in declaration order."""

_BY_KIND: dict[ValueKind, Pattern] = {p.kind: p for p in PATTERNS}


_DIGIT_FIRST = "ascii({t}) BETWEEN 48 AND 57"
_DOTS = "(length({t}) - length(replace({t}, '.', '')))"
_MONTHS = "'jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'"
# A literal that every OS alternative contains ("centos", "sunos", "macos" and "os x" all
# contain "os").
_OS_LITERALS = [
    "win",
    "rhel",
    "red",
    "rocky",
    "alma",
    "ubuntu",
    "debian",
    "suse",
    "sles",
    "fedora",
    "linux",
    "solaris",
    "hp",
    "bsd",
    "esx",
    "mac",
    "os",
    "aix",
]
# The last letter of every SIZE unit: b, i (Gi), a bare prefix k/m/g/t/p, byte(s).
_UNIT_ENDS = "'b', 'i', 'k', 'm', 'g', 't', 'p', 'e', 's'"

PATTERN_GUARDS: dict[ValueKind, str] = {
    ValueKind.INTEGER: f"(ascii({{t}}) IN (43, 45) OR {_DIGIT_FIRST}) AND strpos({{t}}, '.') = 0",
    ValueKind.DECIMAL: f"(ascii({{t}}) IN (43, 45, 46) OR {_DIGIT_FIRST}) AND {_DOTS} <= 1",
    ValueKind.BOOLEAN: "length({t}) <= 5",
    ValueKind.DATE: f"({_DIGIT_FIRST} OR left({{lower}}, 3) IN ({_MONTHS})) AND {_DOTS} <= 2",
    ValueKind.IPV4: f"{_DIGIT_FIRST} AND {_DOTS} = 3",
    ValueKind.IPV6: "strpos({t}, ':') > 0",
    ValueKind.FQDN: "strpos({t}, '.') > 0",
    ValueKind.HOSTNAME: "strpos({t}, '.') = 0 AND strpos({t}, ' ') = 0",
    ValueKind.OS: "(" + " OR ".join(f"strpos({{lower}}, '{w}') > 0" for w in _OS_LITERALS) + ")",
    ValueKind.SIZE: f"{_DIGIT_FIRST} AND right({{lower}}, 1) IN ({_UNIT_ENDS})",
    ValueKind.EMAIL: "strpos({t}, '@') > 0",
    ValueKind.UUID: "length({t}) IN (36, 38)",
}
"""Per kind, an SQL condition that every value its pattern matches satisfies, and that costs
next to nothing: most values fail every expensive pattern, which then never runs. ``{t}`` is
the trimmed non-empty value, ``{lower}`` the same with only A-Z lower-cased (``lower()`` in the
"C" collation), which is what ``~*`` folds: PostgreSQL adds the ASCII case variants of the
pattern's letters and does not fold the value. ``ascii()`` is the first code point."""


def pattern(kind: ValueKind) -> Pattern:
    """The pattern for ``kind``."""
    return _BY_KIND[kind]


def classify(value: str) -> set[ValueKind]:
    """Every kind whose pattern fully matches ``value.strip()``; blank values match nothing."""
    stripped = value.strip()
    if not stripped:
        return set()
    return {p.kind for p in PATTERNS if p.py_regex.fullmatch(stripped)}
