"""Suggesting a target attribute for every source column, from its header and its values.

Two kinds of evidence, scored separately and then combined:

* the header, normalised (case, spacing, punctuation, camelCase, units in brackets, ``#``,
  common export prefixes such as ``serv_`` or ``u_``) and compared with synonyms;
* the values, as DATA_VALIDATION profiled them: the share of IPs, FQDNs, OS strings, sizes,
  integers. Values confirm a header (more confidence), contradict it (less), or name the
  attribute on their own when the header says nothing ("Column7" full of IPs).

Then columns are assigned greedily by score, one column per attribute. A column whose best
two candidates score within ``_TIE`` of each other, or that lost its attribute to a column
scoring within ``_TIE``, is AMBIGUOUS; a column with no candidate above ``_FLOOR`` is
UNMAPPED. Nothing is forced: a person settles both before approval.

One column may feed several attributes (``_SHARED``): a name column whose values are host
names ("CI Name", ServiceNow's ``name``) is the asset's name *and* its host name, and a host
name column is also the asset's name, when no other column claims that attribute. The extra
attributes ride on the column's mapping (``also_targets``), with its confidence.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from discovery_svc import vocab
from discovery_svc.domain.mapping_set import COMPANIONS, TARGET_ATTRIBUTES, FieldMapping, State
from discovery_svc.domain.profile import ColumnProfile, describe
from discovery_svc.normalize.lookups import criticality, environment
from discovery_svc.normalize.text import present
from discovery_svc.normalize.units import GB_PER_UNIT

_FLOOR = 0.5
_TIE = 0.05

# Exact synonyms, as normalised phrases; the first is the attribute's own name. The table is
# data (discovery_svc/vocab/header_synonyms.json), so a user can extend it without code.
_HEADERS = vocab.load("header_synonyms")
_SYNONYMS: dict[str, tuple[str, ...]] = {
    attr: tuple(phrases) for attr, phrases in _HEADERS["synonyms"].items()
}
assert set(_SYNONYMS) == set(TARGET_ATTRIBUTES)

# Words that name a unit or an export's table, not the attribute.
_UNIT_WORDS = frozenset({"gb", "mb", "tb", "gib", "mib", "tib", "kb", "g", "m", "t"})
_PREFIX_WORDS = frozenset({"server", "u", "cmdb", "sys", "x", "app", "bus", "ci", "asset"})
# Split camelCase, but keep "IPv4"/"IPv6", a plural acronym ("CPUs", "IPs") and a binary unit
# ("GiB", "MiB") whole.
_CAMEL = re.compile(
    r"(?<=[a-z0-9])(?<![GMKT]i)(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])(?![A-Z]v[0-9])(?![A-Z]s(?![a-z]))"
)
_WORD = re.compile(r"[a-z0-9]+")
_WMI_SUFFIX = re.compile(r"[a-z]{3,}0")
_HARDWARE_VERSION = re.compile(r"(?:v|vmx-?)[0-9]{1,3}", re.IGNORECASE)
_TRANSLITERATE = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss"}
)
_ABBREVIATIONS = {
    "no": "number",
    "num": "number",
    "nr": "number",
    "addr": "address",
    "serv": "server",
    "srv": "server",
}

# Synonyms read the way headers are read, abbreviations expanded ("num cpu" → "number cpu").
_PHRASE = {
    " ".join(_ABBREVIATIONS.get(w, w) for w in phrase.split()): attr
    for attr, phrases in _SYNONYMS.items()
    for phrase in phrases
}

# The same, written without spaces, for headers whose words run together ("OSname"). A
# spelling two attributes share ("cpucore" vs "cpu core"?) keeps the first.
_COMPACT: dict[str, str] = {}
for _phrase, _attr in _PHRASE.items():
    _COMPACT.setdefault(_phrase.replace(" ", ""), _attr)

# Headers of a cpu_cores column that count sockets: only those a cores_per_socket column
# multiplies ("cpucount" x "cpucore"); "CPUs" or "vCPU" already count every core.
_SOCKET_HEADERS = frozenset(
    " ".join(_ABBREVIATIONS.get(w, w) for w in phrase.split())
    for phrase in _HEADERS["socket_count_headers"]
)
# A socket count is the core count when nothing multiplies it (one core per socket at least).
for _phrase in sorted(_SOCKET_HEADERS):
    _PHRASE.setdefault(_phrase, "cpu_cores")
    _COMPACT.setdefault(_phrase.replace(" ", ""), "cpu_cores")

# Attributes that name one asset: a column repeating its values far more than another
# name column does (RVTools' "Host": the ESXi host of each VM) is not the asset's name.
_NAMING = frozenset({"hostname", "asset_name"})
_NAME_LIKE = frozenset({"hostname", "fqdn", "text"})
# Free-text attributes that a column of closed-vocabulary values ("Production", "High") is not.
_FREE_TEXT = frozenset(
    {"application_name", "owner", "department", "location", "data_center", "asset_name", "hostname"}
)
# Which unit a column of unit words ("MB", "GB") qualifies, by a word of its header.
_UNIT_OF = {
    "memory_unit": frozenset({"ram", "mem", "memory"}),
    "storage_unit": frozenset({"disk", "storage", "hdd", "capacity", "drive", "disks"}),
}

# Which profiled kinds speak for an attribute: (kinds, whether they name it on their own).
_VALUE_KINDS: dict[str, tuple[frozenset[str], bool]] = {
    "ip_address": (frozenset({"ipv4", "ipv6"}), True),
    "hostname": (frozenset({"fqdn", "hostname"}), False),
    "operating_system": (frozenset({"os"}), True),
    "memory_gb": (frozenset({"size", "integer", "decimal"}), False),
    "storage_gb": (frozenset({"size", "integer", "decimal"}), False),
    "cpu_cores": (frozenset({"integer"}), False),
}


# Attributes one column may fill together: (attribute the column won, attribute it also
# fills, share of host-name-like values the column needs for that).
_SHARED: tuple[tuple[str, str, float], ...] = (
    ("asset_name", "hostname", 0.8),
    ("hostname", "asset_name", 0.0),
)


@dataclass(frozen=True)
class _Candidate:
    attribute: str
    score: float
    reason: str


def _ascii(header: str) -> str:
    """German letters transliterated, other accents dropped: "Gerätetyp" → "Geraetetyp"."""
    decomposed = unicodedata.normalize("NFKD", header.translate(_TRANSLITERATE))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def header_words(header: str) -> list[str]:
    """``"RAM (GB)"`` → ``["ram", "gb"]``, ``"HOST_NAME"`` → ``["host", "name"]``."""
    spaced = _CAMEL.sub(" ", _ascii(header).replace("#", " number ").replace("O/S", "OS"))
    words = _WORD.findall(spaced.lower())
    # "o s" (from "O.S.") and other split single letters read as one word.
    joined: list[str] = []
    # SCCM/WMI views suffix their columns with 0 ("Name0", "Model0").
    words = [w[:-1] if _WMI_SUFFIX.fullmatch(w) else w for w in words]
    for w in words:
        if len(w) == 1 and joined and len(joined[-1]) == 1 and w.isalpha():
            joined[-1] += w
        else:
            joined.append(w)
    return [_ABBREVIATIONS.get(w, w) for w in joined]


def _header_candidates(header: str) -> list[_Candidate]:
    words = header_words(header)
    if not words:
        return []
    phrase = " ".join(words)
    quoted = repr(header.strip())
    found: dict[str, _Candidate] = {}

    def offer(attr: str, score: float, why: str) -> None:
        if attr not in found or found[attr].score < score:
            found[attr] = _Candidate(attr, score, why)

    if phrase in _PHRASE:
        attr = _PHRASE[phrase]
        own = phrase == _SYNONYMS[attr][0]
        offer(attr, 0.95 if own else 0.9, f"header {quoted} is a synonym of {attr}")
    compact = "".join(words)
    if phrase not in _PHRASE and compact in _COMPACT:
        # Words run together ("OSname", "Serialnumber", "ipaddress").
        attr = _COMPACT[compact]
        offer(attr, 0.85, f"header {quoted} reads as {_SYNONYMS[attr][0]!r}")
    core = [w for w in words if w not in _UNIT_WORDS] or words
    while core and core[0] in _PREFIX_WORDS and len(core) > 1:
        core = core[1:]
    stripped = " ".join(core)
    if stripped != phrase and stripped in _PHRASE:
        attr = _PHRASE[stripped]
        offer(attr, 0.85, f"header {quoted} reads as {stripped!r}, a synonym of {attr}")
    # A synonym of several words inside a longer header ("Primary Server Hostname"), or one
    # that starts it ("Hostname (FQDN)"). A single word further in is not enough: it is often
    # qualified into something else ("last backup category" is no asset type).
    padded = f" {stripped} "
    for candidate, attr in _PHRASE.items():
        if candidate == stripped:
            continue
        if " " in candidate and f" {candidate} " in padded:
            offer(attr, 0.7, f"header {quoted} contains {candidate!r} ({attr})")
        elif len(candidate) >= 4 and core[0] == candidate:
            offer(attr, 0.65, f"header {quoted} starts with {candidate!r} ({attr})")
    return list(found.values())


def _value_share(column: ColumnProfile, attribute: str) -> float | None:
    """The share of non-empty values that fit ``attribute``; ``None`` if values cannot tell."""
    kinds = _VALUE_KINDS.get(attribute)
    if kinds is None or column.inferred_type == "empty":
        return None
    patterns = dict(column.patterns)
    if attribute == "operating_system" and patterns.get("fqdn", 0.0) >= 0.5:
        # "esx01.vc.example.org" starts with an OS word, but an FQDN names a host.
        return 0.0
    if attribute in ("memory_gb", "storage_gb", "cpu_cores"):
        # Numbers with or without units: the largest matching kind, not the sum (overlap).
        return max((patterns.get(k, 0.0) for k in kinds[0]), default=0.0)
    return min(1.0, sum(patterns.get(k, 0.0) for k in kinds[0]))


def _top_kind(column: ColumnProfile, attribute: str) -> str:
    kinds = _VALUE_KINDS[attribute][0]
    best = max((p for p in column.patterns if p[0] in kinds), key=lambda p: p[1], default=None)
    return describe(best[0]) if best else "values"


def _candidates(column: ColumnProfile) -> list[_Candidate]:
    out: list[_Candidate] = []
    named = _header_candidates(column.name)
    for c in named:
        share = _value_share(column, c.attribute)
        if share is None:
            out.append(c)
        elif share >= 0.8:
            out.append(
                _Candidate(
                    c.attribute,
                    min(0.99, c.score + 0.08),
                    f"{c.reason}; {share:.0%} of values are {_top_kind(column, c.attribute)}",
                )
            )
        elif share < 0.3:
            out.append(
                _Candidate(
                    c.attribute,
                    c.score * 0.6,
                    f"{c.reason}, but only {share:.0%} of values look like it",
                )
            )
        else:
            out.append(c)
    headed = {c.attribute for c in named}
    for attribute, (_kinds, decisive) in _VALUE_KINDS.items():
        if attribute in headed:
            continue
        share = _value_share(column, attribute)
        if share is None or share < 0.8:
            continue
        if decisive:
            score = 0.6 + 0.35 * share
        elif attribute == "hostname" and dict(column.patterns).get("fqdn", 0.0) >= 0.8:
            score = 0.8
        else:
            continue
        out.append(
            _Candidate(
                attribute,
                score,
                f"{share:.0%} of values are {_top_kind(column, attribute)}"
                f" (header {column.name.strip()!r} says nothing)",
            )
        )
    out = _closed_vocabularies(column, out)
    out.sort(key=lambda c: -c.score)
    return out


def _sample_share(column: ColumnProfile, fits: Callable[[str], bool]) -> float:
    """The share of the column's most frequent values that ``fits`` accepts (0 with fewer
    than two values: one value proves nothing)."""
    values = [v for v in (present(s) for s in column.sample_values) if v]
    if len(values) < 2:
        return 0.0
    return sum(map(fits, values)) / len(values)


def _is_environment(value: str) -> bool:
    return environment(value)[0] is not None


def _is_criticality(value: str) -> bool:
    return criticality(value)[0] is not None


def _names_criticality(value: str) -> bool:
    # Digits alone ("1", "2") are tiers only under a criticality header: NICs count so too.
    return not value.isdigit() and _is_criticality(value)


# (attribute, values that name it without a header, values it may hold, what they are)
_CLOSED: tuple[tuple[str, Callable[[str], bool], Callable[[str], bool], str], ...] = (
    ("environment", _is_environment, _is_environment, "environment names"),
    ("business_criticality", _names_criticality, _is_criticality, "criticality levels"),
)


def _is_hardware_version(value: str) -> bool:
    return _HARDWARE_VERSION.fullmatch(value) is not None


def _is_unit(value: str) -> bool:
    return value.lower() in GB_PER_UNIT


def _adjust(c: _Candidate, factor: float, why: str) -> _Candidate:
    return _Candidate(c.attribute, min(0.99, c.score * factor), c.reason + why)


def _closed_vocabularies(column: ColumnProfile, found: list[_Candidate]) -> list[_Candidate]:
    """Values from a closed vocabulary say what a column is, whatever its header suggests:
    environment names ("Production", "QA") are an environment, not an application or owner;
    unit words ("MB", "GB") are the unit of the memory or disk column beside them."""
    out = list(found)
    shown = ", ".join(repr(s) for s in column.sample_values[:3])
    for attribute, names, fits, what in _CLOSED:
        if _sample_share(column, names) == 1.0:
            why = f"; its values ({shown}) are {what}"
            out = [_adjust(c, 0.6, why) if c.attribute in _FREE_TEXT else c for c in out]
            if not any(c.attribute == attribute for c in out):
                # Values alone: suggested, but below a header's word (auto-approval threshold).
                out.append(_Candidate(attribute, 0.7, why.removeprefix("; ").capitalize()))
        elif _sample_share(column, fits) == 0.0 and len(column.sample_values) >= 2:
            # "Service Level" of Gold/Silver/Bronze: the header says environment, no value is.
            why = f", but none of its values ({shown}) are {what}"
            out = [_adjust(c, 0.5, why) if c.attribute == attribute else c for c in out]
    if _sample_share(column, _is_hardware_version) == 1.0:
        # vCenter's "Version" is the VM hardware version ("v19", "vmx-19"), not the OS's.
        why = f", but its values ({shown}) are VM hardware versions"
        out = [_adjust(c, 0.5, why) if c.attribute == "os_version" else c for c in out]
    if _sample_share(column, _is_unit) == 1.0:
        words = set(header_words(column.name))
        for attribute, nouns in _UNIT_OF.items():
            if words & nouns and not any(c.attribute == attribute for c in out):
                out.append(
                    _Candidate(
                        attribute,
                        0.8,
                        f"its values ({shown}) are size units and the header names {attribute}"
                        f"'s quantity",
                    )
                )
    return out


def _rarely_distinct(
    columns: Sequence[ColumnProfile], candidates: dict[int, list[_Candidate]]
) -> dict[int, list[_Candidate]]:
    """Name candidates of a column that repeats its values far more than the most varied name
    column does: one name per asset, so a column naming few things names something else."""

    def variety(c: ColumnProfile) -> float:
        # Distinct values per filled row: a mostly empty column of unique names is varied.
        filled = 1.0 - c.null_fraction
        return c.distinct_count / filled if filled > 0 else 0.0

    naming = [
        variety(c)
        for c in columns
        if any(cand.attribute in _NAMING for cand in candidates[c.position])
    ]
    most = max(naming, default=0.0)
    out: dict[int, list[_Candidate]] = {}
    for c in columns:
        mine = candidates[c.position]
        # Only values that read as names: numbers under a name header are contradiction
        # enough, said once.
        if c.inferred_type == "boolean":
            # Yes/No under "Virtual Machine": a flag, whatever its header, names nothing.
            mine = [x for x in mine if x.attribute not in _NAMING]
        elif variety(c) < 0.5 * most and c.inferred_type in _NAME_LIKE:
            why = (
                f", but its values repeat: {c.distinct_count} distinct among"
                f" {1 - c.null_fraction:.0%} of the rows, where another name column's hardly"
                " do; it names something many rows share"
            )
            mine = sorted(
                (_adjust(x, 0.5, why) if x.attribute in _NAMING else x for x in mine),
                key=lambda x: -x.score,
            )
        out[c.position] = mine
    return out


def suggest(columns: Sequence[ColumnProfile]) -> list[FieldMapping]:
    """One :class:`FieldMapping` per column, in column order."""
    # An empty column fills nothing, whatever its header says: listed, never suggested.
    candidates = _rarely_distinct(
        columns,
        {c.position: [] if c.inferred_type == "empty" else _candidates(c) for c in columns},
    )
    ranked = sorted(
        ((cand.score, pos, cand) for pos, cands in candidates.items() for cand in cands),
        key=lambda t: (-t[0], t[1]),
    )
    assigned: dict[int, _Candidate] = {}
    winner: dict[str, tuple[int, float]] = {}
    for score, pos, cand in ranked:
        if score < _FLOOR or pos in assigned or cand.attribute in winner:
            continue
        assigned[pos] = cand
        winner[cand.attribute] = (pos, score)
    also: dict[int, tuple[str, ...]] = {}
    by_position = {c.position: c for c in columns}
    for pos, cand in sorted(assigned.items(), key=lambda t: (-t[1].score, t[0])):
        for won, shared, share in _SHARED:
            if cand.attribute != won or shared in winner:
                continue
            if _host_share(by_position[pos]) < share:
                continue
            also[pos] = (*also.get(pos, ()), shared)
            winner[shared] = (pos, cand.score)

    result: list[FieldMapping] = []
    for pos in sorted(by_position):
        name = by_position[pos].name
        mine = [c for c in candidates[pos] if c.score >= _FLOOR]
        chosen = assigned.get(pos)
        if chosen is None:
            lost = [c for c in mine if c.attribute in winner]
            if lost:
                best = lost[0]
                rival = by_position[winner[best.attribute][0]].name
                close = winner[best.attribute][1] - best.score <= _TIE
                result.append(
                    FieldMapping(
                        position=pos,
                        source_column=name,
                        target_attribute=best.attribute if close else None,
                        confidence=round(best.score, 3),
                        reason=(
                            f"{best.reason}; {rival!r} fits {best.attribute} "
                            + ("about as well" if close else "better")
                        ),
                        state=State.AMBIGUOUS if close else State.UNMAPPED,
                        alternatives=(best.attribute,),
                    )
                )
            else:
                result.append(
                    FieldMapping(
                        position=pos,
                        source_column=name,
                        target_attribute=None,
                        confidence=0.0,
                        reason=_unmapped_reason(by_position[pos]),
                        state=State.UNMAPPED,
                        alternatives=_header_only(by_position[pos]),
                    )
                )
            continue
        extra = also.get(pos, ())
        filled = {chosen.attribute, *extra}
        others = tuple(c.attribute for c in mine if c.attribute not in filled)
        tied = [c for c in mine if c.attribute not in filled and chosen.score - c.score <= _TIE]
        result.append(
            FieldMapping(
                position=pos,
                source_column=name,
                target_attribute=chosen.attribute,
                confidence=round(chosen.score, 3),
                reason=chosen.reason
                + _also_reason(by_position[pos], extra)
                + ("; could also be " + ", ".join(c.attribute for c in tied) if tied else ""),
                state=State.AMBIGUOUS if tied else State.SUGGESTED,
                alternatives=others,
                also_targets=extra,
            )
        )
    return _orphan_companions(_socket_multiplier(result))


def _socket_multiplier(result: list[FieldMapping]) -> list[FieldMapping]:
    """Settle a cores_per_socket column against the cpu_cores column.

    It multiplies a column that counts sockets ("cpucount" x "cpucore"); beside a column that
    counts every core ("CPUs") it would double-count, so it is left unmapped; alone, its
    values are the best core count there is.
    """
    per = next((m for m in result if m.usable_target == "cores_per_socket"), None)
    if per is None:
        return _pair_sockets_and_cores(result)
    cores = next((m for m in result if "cpu_cores" in m.usable_targets), None)
    if cores is None:
        changed = {
            per.position: replace(
                per,
                target_attribute="cpu_cores",
                reason=per.reason + "; no column counts sockets or cores, so it is the core"
                " count (one socket assumed)",
                alternatives=("cores_per_socket", *per.alternatives),
            )
        }
    elif _header_phrase(cores) in _SOCKET_HEADERS:
        changed = {
            per.position: replace(
                per,
                reason=per.reason
                + f"; multiplies {cores.source_column!r} (sockets) row by row into cpu_cores",
            ),
            cores.position: replace(
                cores,
                reason=cores.reason + f"; it counts sockets: times {per.source_column!r}",
            ),
        }
    else:
        changed = {
            per.position: replace(
                per,
                target_attribute=None,
                state=State.UNMAPPED,
                reason=per.reason + f"; but {cores.source_column!r} counts every core already,"
                " so multiplying would count them twice",
                alternatives=("cores_per_socket",),
            )
        }
    return [changed.get(m.position, m) for m in result]


def _header_phrase(m: FieldMapping) -> str:
    return " ".join(header_words(m.source_column))


# WMI and the tools reading it (SCCM, Lansweeper) count cores per processor beside a processor
# count; elsewhere "CPU Cores" beside "CPU Sockets" is a total (vSphere), so only these pair.
_PER_SOCKET_PAIRS = {
    "number of processors": "number of cores",
    "numberofprocessors": "numberofcores",
    "processor count": "number of cores",
}
# Below the auto-approval threshold: a person confirms that the cores are per processor.
_PAIRED = 0.8


def _pair_sockets_and_cores(result: list[FieldMapping]) -> list[FieldMapping]:
    """ "Number of Processors" beside "Number Of Cores" (WMI: cores of each processor): the
    two tie on cpu_cores; the socket count takes it and the other multiplies it."""
    contenders = [
        m for m in result if m.target_attribute == "cpu_cores" or "cpu_cores" in m.alternatives[:1]
    ]
    sockets = [m for m in contenders if _header_phrase(m) in _PER_SOCKET_PAIRS]
    cores = [m for m in contenders if _header_phrase(m) in _PER_SOCKET_PAIRS.values()]
    if len(sockets) != 1 or len(cores) != 1:
        return result
    (s,), (c,) = sockets, cores
    changed = {
        s.position: replace(
            s,
            target_attribute="cpu_cores",
            state=State.SUGGESTED,
            confidence=_PAIRED,
            reason=f"{s.reason}; it counts sockets: times {c.source_column!r}",
            alternatives=tuple(a for a in s.alternatives if a != "cpu_cores"),
        ),
        c.position: replace(
            c,
            target_attribute="cores_per_socket",
            state=State.SUGGESTED,
            confidence=_PAIRED,
            reason=f"{c.reason}; beside the socket count {s.source_column!r} it counts the"
            " cores of each socket, and multiplies it row by row into cpu_cores",
            alternatives=("cpu_cores",),
        ),
    }
    return [changed.get(m.position, m) for m in result]


def _orphan_companions(result: list[FieldMapping]) -> list[FieldMapping]:
    """A unit column beside no size column qualifies nothing: left for a person."""
    filled = {t for m in result for t in m.usable_targets}
    out = []
    for m in result:
        companion = m.usable_target
        if companion in COMPANIONS and COMPANIONS[companion] not in filled:
            m = replace(
                m,
                target_attribute=None,
                state=State.UNMAPPED,
                reason=f"{m.reason}; but no column gives {COMPANIONS[companion]}",
                alternatives=(companion,),
            )
        out.append(m)
    return out


def _host_share(column: ColumnProfile) -> float:
    """The share of non-empty values that are host names or FQDNs."""
    patterns = dict(column.patterns)
    return min(1.0, patterns.get("hostname", 0.0) + patterns.get("fqdn", 0.0))


def _also_reason(column: ColumnProfile, extra: Sequence[str]) -> str:
    if not extra:
        return ""
    why = {
        "hostname": f"{_host_share(column):.0%} of its values are host names",
        "asset_name": "a host is named by its host name",
    }
    return "".join(f"; also {attr}: {why[attr]} and no other column gives {attr}" for attr in extra)


def _header_only(column: ColumnProfile) -> tuple[str, ...]:
    if column.inferred_type != "empty":
        return ()
    return tuple(c.attribute for c in _header_candidates(column.name))


def _unmapped_reason(column: ColumnProfile) -> str:
    if column.inferred_type == "empty":
        named = _header_only(column)
        hint = f" (the header suggests {', '.join(named)})" if named else ""
        return "every value is empty, so it fills nothing" + hint
    return "no header synonym or value pattern points to a target attribute"
