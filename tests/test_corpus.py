"""The test corpus of issue 8, item 8: five exports in the styles of ServiceNow, Device42,
Lansweeper, RVTools and a hand-made spreadsheet, each run through the public RPCs to
COMPLETED and compared asset by asset with the ground truth its generator wrote.

The expected inventory comes from ``tests/corpus/<name>.truth.json`` alone (written by
``tests/corpus/generate.py`` from what it *meant* each row to be), never from the service's
code. Assets are matched to intended hosts by their source rows (GetAsset.source_rows), so
the comparison does not depend on how the service spells an identity.

Properties that fail because of a service defect are separate tests marked
``xfail(strict=True)``: they turn into failures the moment the defect is fixed.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from discovery_svc.domain.mapping_set import REQUIRED
from discovery_svc.entrypoints.vocabularies import ASSET_TYPE
from flowpair.v1 import discovery_pb2, flow_pb2, orchestrator_pb2
from flowpair_shared import devstack
from tests.support import Stack, approve_waiving_gaps, md, new_tenant
from tests.test_discovery_journey import all_pages, watch_until

CORPUS = Path(__file__).resolve().parent / "corpus"
FILES = sorted(p.stem for p in CORPUS.glob("*.csv"))
MAX_MEMORY_GB = 12 * 1024  # no server of the corpus has more than 256 GB; 12 TB is a ceiling
MAX_CORES = 512
MAX_STORAGE_GB = 10 * 1024 * 1024


@dataclass
class Outcome:
    """What one corpus file became: the gate's listing, how it was approved, the assets with
    their rows, and the issues per row."""

    truth: dict[str, Any]
    listed: discovery_pb2.ListFieldMappingsResponse
    auto_approved: bool
    assets: list[discovery_pb2.Asset]
    rows_of: dict[str, set[int]]  # asset name -> its row numbers (applications left out)
    issues: list[discovery_pb2.DataIssue]
    seconds: float
    host_of_row: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for host in self.truth["hosts"]:
            for row in host["rows"]:
                self.host_of_row[row] = host["key"]

    def assets_of_host(self, key: str) -> set[str]:
        rows = next(set(h["rows"]) for h in self.truth["hosts"] if h["key"] == key)
        return {name for name, got in self.rows_of.items() if got & rows}


@pytest.fixture(scope="module")
async def corpus_stack(admin_url: str, template_db: str) -> AsyncIterator[Stack]:
    """One database and both services for the whole module: each file runs once."""
    name = f"flowpair_t_{uuid.uuid4().hex[:12]}"
    url = await devstack.ensure_database(admin_url, name, template=template_db)
    stack = Stack(url)
    await stack.start_orchestrator()
    await stack.start_discovery()
    yield stack
    await stack.close()
    await devstack.drop_database(admin_url, name)


_OUTCOMES: dict[str, Outcome] = {}


async def run_file(stack: Stack, stem: str) -> Outcome:
    """Upload the file, create an auto-approved flow; approve with waivers if the gate holds;
    run to COMPLETED and read assets (with rows) and issues."""
    if stem in _OUTCOMES:
        return _OUTCOMES[stem]
    loop = asyncio.get_running_loop()
    started = loop.time()
    truth = json.loads((CORPUS / f"{stem}.truth.json").read_text())
    tenant = new_tenant()  # a tenant per file: the inventories do not mix
    disc = stack.discovery()
    data = (CORPUS / f"{stem}.csv").read_bytes()
    name, _ = await stack.start_flow(tenant, data, auto_approve=True)
    settled: set[int] = {
        flow_pb2.FLOW_STATUS_WAITING_FOR_APPROVAL,
        flow_pb2.FLOW_STATUS_COMPLETED,
        flow_pb2.FLOW_STATUS_FAILED,
    }
    state, seen = await asyncio.wait_for(watch_until(stack, tenant, name, settled), 120)
    listed = await disc.ListFieldMappings(
        discovery_pb2.ListFieldMappingsRequest(master_flow=name), metadata=md(tenant)
    )
    auto = state.status != flow_pb2.FLOW_STATUS_WAITING_FOR_APPROVAL
    if not auto:
        ambiguous = [
            m.source_column
            for m in listed.mappings
            if m.state == discovery_pb2.MAPPING_STATE_AMBIGUOUS
        ]
        if ambiguous:  # a careful reviewer leaves out the columns the mapper is unsure of
            await disc.UpdateFieldMappings(
                discovery_pb2.UpdateFieldMappingsRequest(
                    master_flow=name,
                    etag=listed.etag,
                    updates=[
                        discovery_pb2.FieldMappingUpdate(source_column=c, reject=True)
                        for c in ambiguous
                    ],
                ),
                metadata=md(tenant),
            )
        await approve_waiving_gaps(
            stack,
            tenant,
            name,
            await disc.ListFieldMappings(
                discovery_pb2.ListFieldMappingsRequest(master_flow=name), metadata=md(tenant)
            ),
        )
        await stack.orchestrator().ResumeFlow(
            orchestrator_pb2.ResumeFlowRequest(name=name), metadata=md(tenant)
        )
        state, _ = await asyncio.wait_for(
            watch_until(
                stack,
                tenant,
                name,
                {flow_pb2.FLOW_STATUS_COMPLETED, flow_pb2.FLOW_STATUS_FAILED},
                seen,
            ),
            180,
        )
    assert state.status == flow_pb2.FLOW_STATUS_COMPLETED, state
    listed_assets = await all_pages(
        disc.ListAssets, discovery_pb2.ListAssetsRequest(page_size=1000), "assets", tenant
    )
    assets: list[discovery_pb2.Asset] = []
    rows_of: dict[str, set[int]] = {}
    for a in listed_assets:
        assert isinstance(a, discovery_pb2.Asset)
        got = (
            await disc.GetAsset(discovery_pb2.GetAssetRequest(name=a.name), metadata=md(tenant))
        ).asset
        assets.append(got)
        if (
            got.asset_type != discovery_pb2.ASSET_TYPE_APPLICATION
        ):  # no row of the corpus names an application
            rows_of[got.name] = {int(r.rsplit("/", 1)[1]) for r in got.source_rows}
    issues = [
        i
        for i in await all_pages(
            disc.ListDataIssues,
            discovery_pb2.ListDataIssuesRequest(master_flow=name, page_size=1000),
            "data_issues",
            tenant,
        )
        if isinstance(i, discovery_pb2.DataIssue)
    ]
    outcome = Outcome(truth, listed, auto, assets, rows_of, issues, loop.time() - started)
    _OUTCOMES[stem] = outcome
    print(
        f"\n{stem}: {truth['row_count']} rows, {len(assets)} assets, {len(issues)} issues, "
        f"{'auto-approved' if auto else 'approved with waivers'}, {outcome.seconds:.1f}s; "
        f"false-issue rows {len(false_issue_rows(outcome))} "
        f"({100 * false_issue_rate(outcome):.1f} %); "
        f"types {dict(sorted(Counter(ASSET_TYPE.text(a.asset_type) for a in assets).items()))} "
        f"(meant {dict(sorted(Counter(h['asset_type'] for h in truth['hosts']).items()))}); "
        f"waived {list(listed.missing_required_attributes)}; mapping "
        + ", ".join(
            f"{m.source_column}->{m.target_attribute or '-'}"
            + "".join(f"+{t}" for t in m.additional_target_attributes)
            + f"[{discovery_pb2.MappingState.Name(m.state).removeprefix('MAPPING_STATE_')}]"
            for m in listed.mappings
        )
    )
    if os.environ.get("FLOWPAIR_CORPUS_ISSUES"):  # every issue and asset, to read while debugging
        for a in assets:
            print(
                f"  {stem} asset {a.display_name!r} host={a.hostname!r} domain={a.domain!r} "
                f"ip={a.ip_address} serial={a.serial_number!r}"
                f" type={ASSET_TYPE.text(a.asset_type)} "
                f"rows={sorted(rows_of.get(a.name, ()))}"
            )
        for i in issues:
            print(
                f"  {stem} row {i.row_number} {discovery_pb2.DataIssueKind.Name(i.kind)} "
                f"{i.attribute}={i.value[:40]!r}: {i.problem}"
            )
    return outcome


def suggested_attributes(listed: discovery_pb2.ListFieldMappingsResponse) -> set[str]:
    out: set[str] = set()
    for m in listed.mappings:
        if m.state in (
            discovery_pb2.MAPPING_STATE_SUGGESTED,
            discovery_pb2.MAPPING_STATE_APPROVED,
        ):
            out.add(m.target_attribute)
            out.update(m.additional_target_attributes)
    return out


# --- the checks, each a function returning its failures (empty when the property holds) ---


def gate_gaps(o: Outcome) -> list[str]:
    wanted = set(REQUIRED) - set(o.truth["absent_required_attributes"])
    return sorted(wanted - suggested_attributes(o.listed))


def wrong_merges(o: Outcome) -> list[str]:
    """Assets whose rows belong to more than one intended host."""
    out = []
    for name, rows in o.rows_of.items():
        hosts = {o.host_of_row[r] for r in rows if r in o.host_of_row}
        if len(hosts) > 1:
            out.append(f"{name} merges {sorted(hosts)} (rows {sorted(rows)})")
    return out


def wrong_splits(o: Outcome) -> list[str]:
    """Intended hosts whose rows are spread over more than one asset."""
    out = []
    for host in o.truth["hosts"]:
        got = o.assets_of_host(host["key"])
        if len(got) > 1:
            out.append(f"{host['key']} (rows {host['rows']}) split into {len(got)} assets")
    return out


def lost_rows(o: Outcome) -> list[str]:
    """Rows with neither an asset nor a ROW_WITHOUT_ASSET issue; and rows the truth says
    identify nothing that got an asset anyway, or host rows explained away."""
    linked = set().union(*o.rows_of.values()) if o.rows_of else set()
    without = {
        i.row_number for i in o.issues if i.kind == discovery_pb2.DATA_ISSUE_KIND_ROW_WITHOUT_ASSET
    }
    out = []
    for n in range(1, o.truth["row_count"] + 1):
        if n not in linked and n not in without:
            out.append(f"row {n}: no asset and no ROW_WITHOUT_ASSET issue")
        elif str(n) in o.truth["rows_without_asset"] and n in linked:
            out.append(f"row {n} ({o.truth['rows_without_asset'][str(n)]}) made an asset")
        elif n in o.host_of_row and n not in linked:
            out.append(f"row {n} of {o.host_of_row[n]} made no asset")
    return out


def the_asset(o: Outcome, key: str) -> discovery_pb2.Asset | None:
    got = o.assets_of_host(key)
    if len(got) != 1:
        return None
    (name,) = got
    return next(a for a in o.assets if a.name == name)


def count_mismatches(o: Outcome) -> list[str]:
    """The corpus has no application column and names no application: every asset is one of
    the intended hosts, one per host."""
    out = []
    apps = sorted(
        a.display_name for a in o.assets if a.asset_type == discovery_pb2.ASSET_TYPE_APPLICATION
    )
    if apps:
        out.append(f"{len(apps)} application assets: {apps[:6]}")
    hosts = len(o.truth["hosts"])
    if len(o.rows_of) != hosts:
        out.append(f"{len(o.rows_of)} host assets for {hosts} intended hosts")
    return out


def type_mismatches(o: Outcome) -> list[str]:
    out = []
    for host in o.truth["hosts"]:
        a = the_asset(o, host["key"])
        if a is not None and ASSET_TYPE.text(a.asset_type) not in host["accepted_types"]:
            got = ASSET_TYPE.text(a.asset_type)
            out.append(f"{host['key']}: {got!r}, meant {host['accepted_types']}")
    return out


def value_mismatches(o: Outcome, attribute: str) -> list[str]:
    out = []
    for host in o.truth["hosts"]:
        a = the_asset(o, host["key"])
        if a is None:
            continue
        want = float(host[attribute])
        got = float(getattr(a, attribute))
        tolerance = 0.06 * want if attribute == "memory_gb" else 0  # GiB vs GB rounding
        if abs(got - want) > tolerance:
            out.append(f"{host['key']} (rows {host['rows']}): {attribute}={got}, meant {want}")
    return out


def storage_mismatches(o: Outcome) -> list[str]:
    """Disk sizes, where the export has a disk column (5 %: TB or TiB)."""
    out = []
    for host in o.truth["hosts"]:
        a = the_asset(o, host["key"])
        want = host["storage_gb"]
        if a is not None and want is not None and abs(a.storage_gb - want) > 0.05 * want:
            out.append(
                f"{host['key']} (rows {host['rows']}): storage_gb={a.storage_gb}, meant {want}"
            )
    return out


def unreported_traps(o: Outcome) -> list[str]:
    """Rows with a trap a reader must be told about (a serial or IP shared by different names,
    a name with spaces, a placeholder name) but no issue."""
    reported = {i.row_number for i in o.issues}
    return [
        f"row {n}: {why}" for n, why in o.truth["rows_to_report"].items() if int(n) not in reported
    ]


def implausible(o: Outcome) -> list[str]:
    return [
        f"{a.display_name}: memory_gb={a.memory_gb} cpu_cores={a.cpu_cores} "
        f"storage_gb={a.storage_gb}"
        for a in o.assets
        if not (
            0 <= a.memory_gb <= MAX_MEMORY_GB
            and 0 <= a.cpu_cores <= MAX_CORES
            and 0 <= a.storage_gb <= MAX_STORAGE_GB
        )
    ]


def false_issue_rows(o: Outcome) -> dict[int, list[str]]:
    """Rows with an issue although the generator put no trap in them."""
    traps = set(o.truth["trap_rows"])
    out: dict[int, list[str]] = {}
    for i in o.issues:
        if str(i.row_number) not in traps:
            out.setdefault(i.row_number, []).append(
                f"{discovery_pb2.DataIssueKind.Name(i.kind)} {i.attribute}={i.value!r}: {i.problem}"
            )
    return out


def false_issue_rate(o: Outcome) -> float:
    return len(false_issue_rows(o)) / int(o.truth["row_count"])


def xfail_on(defects: dict[str, str]) -> list[Any]:
    """The corpus files as parameters, each marked xfail(strict) with its known defect."""
    return [
        pytest.param(
            stem,
            marks=[pytest.mark.xfail(strict=True, reason=defects[stem])] if stem in defects else [],
        )
        for stem in FILES
    ]


def show(items: list[str] | dict[int, list[str]], limit: int = 8) -> str:
    seq = list(items.items()) if isinstance(items, dict) else items
    return f"{len(seq)}: " + "; ".join(str(x) for x in seq[:limit])


# --- the tests ---


def test_the_corpus_is_as_generated() -> None:
    """The committed CSVs are what the generator writes (the generator is deterministic)."""
    import tempfile

    from tests.corpus import generate

    with tempfile.TemporaryDirectory() as tmp:
        original = generate.HERE
        generate.HERE = Path(tmp)
        try:
            generate.main()
        finally:
            generate.HERE = original
        for path in Path(tmp).iterdir():
            assert path.read_bytes() == (CORPUS / path.name).read_bytes(), path.name
    for stem in FILES:
        truth = json.loads((CORPUS / f"{stem}.truth.json").read_text())
        assert 100 <= truth["row_count"] <= 400
        covered = [r for h in truth["hosts"] for r in h["rows"]]
        covered += [int(r) for r in truth["rows_without_asset"]]
        assert sorted(covered) == list(range(1, truth["row_count"] + 1)), stem


GATE_DEFECTS: dict[str, str] = {}


@pytest.mark.parametrize("stem", xfail_on(GATE_DEFECTS))
async def test_every_required_attribute_is_suggested_at_the_gate(
    corpus_stack: Stack, stem: str
) -> None:
    o = await run_file(corpus_stack, stem)
    assert not gate_gaps(o), (
        gate_gaps(o),
        [(m.source_column, m.target_attribute, m.state) for m in o.listed.mappings],
    )


MERGE_DEFECTS: dict[str, str] = {}


@pytest.mark.parametrize("stem", xfail_on(MERGE_DEFECTS))
async def test_no_wrong_merges(corpus_stack: Stack, stem: str) -> None:
    o = await run_file(corpus_stack, stem)
    assert not wrong_merges(o), show(wrong_merges(o))


SPLIT_DEFECTS: dict[str, str] = {}


@pytest.mark.parametrize("stem", xfail_on(SPLIT_DEFECTS))
async def test_no_wrong_splits(corpus_stack: Stack, stem: str) -> None:
    o = await run_file(corpus_stack, stem)
    assert not wrong_splits(o), show(wrong_splits(o))


LOST_DEFECTS: dict[str, str] = {}


@pytest.mark.parametrize("stem", xfail_on(LOST_DEFECTS))
async def test_no_row_without_an_asset_or_a_reason(corpus_stack: Stack, stem: str) -> None:
    o = await run_file(corpus_stack, stem)
    assert not lost_rows(o), show(lost_rows(o))


COUNT_DEFECTS: dict[str, str] = {}


@pytest.mark.parametrize("stem", xfail_on(COUNT_DEFECTS))
async def test_one_asset_per_intended_host_and_nothing_else(corpus_stack: Stack, stem: str) -> None:
    o = await run_file(corpus_stack, stem)
    assert not count_mismatches(o), show(count_mismatches(o))


TYPE_DEFECTS: dict[str, str] = {}


@pytest.mark.parametrize("stem", xfail_on(TYPE_DEFECTS))
async def test_types_per_asset(corpus_stack: Stack, stem: str) -> None:
    o = await run_file(corpus_stack, stem)
    assert not type_mismatches(o), show(type_mismatches(o))


MEMORY_DEFECTS: dict[str, str] = {}


@pytest.mark.parametrize("stem", xfail_on(MEMORY_DEFECTS))
async def test_memory_per_asset(corpus_stack: Stack, stem: str) -> None:
    o = await run_file(corpus_stack, stem)
    bad = value_mismatches(o, "memory_gb")
    assert not bad, show(bad)


CPU_DEFECTS: dict[str, str] = {}


@pytest.mark.parametrize("stem", xfail_on(CPU_DEFECTS))
async def test_cpu_per_asset(corpus_stack: Stack, stem: str) -> None:
    o = await run_file(corpus_stack, stem)
    bad = value_mismatches(o, "cpu_cores")
    assert not bad, show(bad)


PLAUSIBILITY_DEFECTS: dict[str, str] = {}


@pytest.mark.parametrize("stem", xfail_on(PLAUSIBILITY_DEFECTS))
async def test_no_implausible_values_stored(corpus_stack: Stack, stem: str) -> None:
    o = await run_file(corpus_stack, stem)
    assert not implausible(o), show(implausible(o))


STORAGE_DEFECTS: dict[str, str] = {}


@pytest.mark.parametrize("stem", xfail_on(STORAGE_DEFECTS))
async def test_storage_per_asset(corpus_stack: Stack, stem: str) -> None:
    o = await run_file(corpus_stack, stem)
    assert not storage_mismatches(o), show(storage_mismatches(o))


REPORT_DEFECTS: dict[str, str] = {}


@pytest.mark.parametrize("stem", xfail_on(REPORT_DEFECTS))
async def test_every_deliberate_trap_that_matters_is_reported(
    corpus_stack: Stack, stem: str
) -> None:
    o = await run_file(corpus_stack, stem)
    assert not unreported_traps(o), show(unreported_traps(o))


ISSUE_DEFECTS: dict[str, str] = {}


@pytest.mark.parametrize("stem", xfail_on(ISSUE_DEFECTS))
async def test_false_issues_under_two_percent_of_rows(corpus_stack: Stack, stem: str) -> None:
    o = await run_file(corpus_stack, stem)
    assert false_issue_rate(o) < 0.02, show(false_issue_rows(o))
