"""A fuzzing campaign: seed a tenant with real data, send batches of cases, judge, report."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import string
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message

from flowpair.v1 import discovery_pb2, flow_pb2, orchestrator_pb2
from flowpair_shared.tenancy import Tenant
from tests.fuzzing.drive import (
    CLIENT_LOST_STATUS,
    Driver,
    Failure,
    Harvest,
    Outcome,
    judge,
    shape,
)
from tests.fuzzing.generate import Case, Fuzzer, Pools
from tests.fuzzing.rows import Rows, Snapshot, changes
from tests.fuzzing.surface import Method, public_methods
from tests.support import ROOT, Stack, eventually, md, new_tenant

INVENTORY = ROOT / "examples" / "inventory.csv"
CMDB = ROOT / "examples" / "cmdb_export.csv"
KINDS = {
    "scratch": 0.30,
    "mutant": 0.29,
    "valid": 0.04,
    "probe": 0.04,
    "raw": 0.15,
    "metadata": 0.18,
}
FILTERS = [
    "status = RUNNING",
    "status = FLOW_STATUS_COMPLETED",
    "status = WAITING_FOR_APPROVAL OR status = FAILED",
    "status = CANCELLED OR status = PAUSED",
]


@dataclass
class Seeded:
    """The seeded tenant, its flows in several states, and the pools of real values."""

    tenant: Tenant
    other: Tenant
    pools: Pools
    completed: str
    waiting: str
    failed: str


@dataclass
class Report:
    seed: int
    methods: list[Method]
    requested: int
    sent: int = 0
    seconds: float = 0.0
    codes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    kinds: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    row_failures: list[str] = field(default_factory=list)
    refused: int = 0
    refused_row_checked: int = 0
    replayed: int = 0
    client_lost: int = 0
    # Where the time went: sending fresh cases, sending refused ones again, waiting for quiet.
    timing: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    batches: int = 0
    batches_compared: int = 0
    unquiet: int = 0
    failure_file: Path | None = None

    def count(self, method: Method) -> int:
        return sum(self.codes[method.short].values())

    def classes(self, rule: str | None = None) -> dict[tuple[str, str], list[Failure]]:
        """Failures grouped by rule and category: one group per defect."""
        grouped: dict[tuple[str, str], list[Failure]] = defaultdict(list)
        for f in self.failures:
            if rule is None or f.rule == rule:
                grouped[(f.rule, f.category)].append(f)
        return grouped

    def describe(self, rule: str | None = None, limit: int = 40) -> str:
        lines = []
        groups = sorted(self.classes(rule).items(), key=lambda kv: -len(kv[1]))
        for (rule_, category), found in groups[:limit]:
            where = Counter(f.outcome.case.method.short for f in found)
            shapes = Counter(f.where for f in found)
            lines.append(f"- [{rule_}] {category} (x{len(found)})")
            lines.append("    methods: " + ", ".join(f"{m} x{n}" for m, n in where.most_common()))
            lines.append("    cases: " + "; ".join(s for s, _ in shapes.most_common(6)))
            seen: set[str] = set()
            for f in found:
                if f.outcome.case.method.short in seen or len(seen) >= 2:
                    continue
                seen.add(f.outcome.case.method.short)
                c = f.outcome.case
                example = f"{c.method.short} {c.kind} ({c.note[:80]})"
                lines.append(f"    e.g. {example}: {f.summary[:240]}")
                lines.append(f"         request: {c.text[:400]}")
                lines.append(f"         metadata: {_meta_text(c)}")
        if len(groups) > limit:
            lines.append(f"... and {len(groups) - limit} more classes")
        if self.failure_file is not None:
            lines.append(f"(every failing request, replayable: {self.failure_file})")
        return "\n".join(lines)

    def render(self) -> str:
        lines = [
            f"fuzz seed {self.seed}: {self.sent} requests in {self.seconds:.1f}s"
            f" ({self.sent / max(self.seconds, 1e-9):.0f}/s);"
            f" kinds {dict(self.kinds)}",
            f"rows: {self.batches_compared}/{self.batches} batches compared,"
            f" {self.refused_row_checked}/{self.refused} refused requests row-checked"
            f" ({self.replayed} sent again for it), {self.unquiet} waits for quiet timed out;"
            f" seconds {', '.join(f'{k} {v:.1f}' for k, v in self.timing.items())}",
        ]
        for m in self.methods:
            counts = ", ".join(f"{c}={n}" for c, n in self.codes[m.short].most_common())
            lines.append(f"  {m.short:<40} {self.count(m):>6}  {counts}")
        if self.client_lost:
            lines.append(
                f"  ({self.client_lost} client-streaming calls ended early by the server left"
                f" the client with grpc's own {CLIENT_LOST_STATUS!r} instead of the status)"
            )
        lines.append(f"failures: {len(self.failures)} in {len(self.classes())} classes")
        if self.failures:
            lines.append(self.describe())
        lines += [f"row change: {r}" for r in self.row_failures]
        return "\n".join(lines)


def _meta_text(case: Case) -> str:
    if case.metadata is None:
        return "none"
    return ", ".join(f"{k}={v!r}" for k, v in case.metadata if k != "authorization")


async def _status(stack: Stack, tenant: Tenant, name: str, wanted: set[Any]) -> None:
    orch = stack.orchestrator()

    async def reached() -> bool:
        got = await orch.GetFlow(orchestrator_pb2.GetFlowRequest(name=name), metadata=md(tenant))
        return got.flow.status in wanted

    await eventually(reached, timeout=90)


async def _create(stack: Stack, tenant: Tenant, import_name: str, display: str) -> str:
    flow = orchestrator_pb2.Flow(
        type=flow_pb2.FLOW_TYPE_DISCOVERY, display_name=display, allow_concurrent=True
    )
    flow.data_import = import_name
    created = await stack.orchestrator().CreateFlow(
        orchestrator_pb2.CreateFlowRequest(flow=flow, request_id=str(uuid.uuid4())),
        metadata=md(tenant),
    )
    return created.flow.name


def long_key_cells() -> bytes:
    """A small inventory whose host, application and serial cells are 9,000 random letters
    (too long for an index entry, and random so that compression does not save them)."""
    rng = random.Random(0)

    def cell() -> str:
        return "".join(rng.choices(string.ascii_lowercase, k=9000))

    return (
        "Server Name,IP Addr,O/S,RAM (GB),vCPU,Environment,Application,Serial #\n"
        f"{cell()},10.0.0.1,RHEL 8.6,16,4,Production,{cell()},{cell()}\n"
        "web02,10.0.0.2,RHEL 8.6,16,4,Production,Shop,S1\n"
    ).encode()


async def _approve_and_finish(stack: Stack, tenant: Tenant, name: str) -> None:
    """Wait for the approval gate, approve with every missing attribute waived, resume, and
    wait until the flow has COMPLETED or FAILED."""
    ended = {flow_pb2.FLOW_STATUS_COMPLETED, flow_pb2.FLOW_STATUS_FAILED}
    await _status(stack, tenant, name, {flow_pb2.FLOW_STATUS_WAITING_FOR_APPROVAL, *ended})
    orch, disc = stack.orchestrator(), stack.discovery()
    got = await orch.GetFlow(orchestrator_pb2.GetFlowRequest(name=name), metadata=md(tenant))
    if got.flow.status in ended:
        return
    listed = await disc.ListFieldMappings(
        discovery_pb2.ListFieldMappingsRequest(master_flow=name), metadata=md(tenant)
    )
    await disc.UpdateFieldMappings(
        discovery_pb2.UpdateFieldMappingsRequest(
            master_flow=name,
            etag=listed.etag,
            approve=True,
            waive_required_attributes=listed.missing_required_attributes,
        ),
        metadata=md(tenant),
    )
    await orch.ResumeFlow(orchestrator_pb2.ResumeFlowRequest(name=name), metadata=md(tenant))
    await _status(stack, tenant, name, ended)


async def seed(stack: Stack) -> Seeded:
    """Uploads and flows in real states: COMPLETED (with assets and dependencies), waiting
    at the approval gate, FAILED, and one on over-long key cells driven as far as it goes;
    another tenant's too, for names that are not ours."""
    tenant, other = new_tenant(), new_tenant()
    orch, disc = stack.orchestrator(), stack.discovery()
    waiting = {flow_pb2.FLOW_STATUS_WAITING_FOR_APPROVAL}
    small = await stack.upload(tenant, INVENTORY.read_bytes())
    big = await stack.upload(tenant, CMDB.read_bytes())
    try:
        long_keys = (await stack.upload(tenant, long_key_cells())).name
    except grpc.aio.AioRpcError as refused:  # refusing such cells at upload is fine too
        if refused.code() != grpc.StatusCode.INVALID_ARGUMENT:
            raise
        long_keys = f"imports/{uuid.uuid4()}"
    completed = await _create(stack, tenant, big.name, "cmdb export")
    waiting_flow = await _create(stack, tenant, small.name, "inventory")
    failed = await _create(stack, tenant, f"imports/{uuid.uuid4()}", "no such import")
    long_flow = await _create(stack, tenant, long_keys, "over-long key cells")
    theirs = await stack.upload(other, INVENTORY.read_bytes())
    their_flow = await _create(stack, other, theirs.name, "another tenant")
    await _approve_and_finish(stack, tenant, completed)
    await _approve_and_finish(stack, tenant, long_flow)
    await _status(stack, tenant, waiting_flow, waiting)
    await _status(stack, tenant, failed, {flow_pb2.FLOW_STATUS_FAILED})
    await _status(stack, other, their_flow, waiting)
    done = await orch.GetFlow(orchestrator_pb2.GetFlowRequest(name=completed), metadata=md(tenant))
    assert done.flow.status == flow_pb2.FLOW_STATUS_COMPLETED, done.flow

    pools = Pools(filters=list(FILTERS))
    # Not the big import: every flow the fuzzer manages to create on it would profile and map
    # 226 rows, time the campaign would spend waiting for quiet.
    for name in (completed, waiting_flow, failed, long_flow, small.name, long_keys):
        pools.add_name(name)
    for name in (their_flow, theirs.name):
        pools.add_name(name, own=False)
    for name, owner in ((completed, tenant), (waiting_flow, tenant), (their_flow, other)):
        got = await orch.GetFlow(orchestrator_pb2.GetFlowRequest(name=name), metadata=md(owner))
        pools.add_name(got.flow.child_flow, own=owner is tenant)
    everything = await disc.ListAssets(
        discovery_pb2.ListAssetsRequest(page_size=1000), metadata=md(tenant)
    )
    for a in everything.assets[:20]:
        pools.add_name(a.name)
    paths = {m.desc.input_type.full_name: m.path for m in public_methods()}
    listings: list[tuple[Any, Message]] = [
        (orch.ListFlows, orchestrator_pb2.ListFlowsRequest(page_size=1)),
        (orch.ListFlows, orchestrator_pb2.ListFlowsRequest(page_size=1, filter=FILTERS[1])),
        (
            orch.ListFlowEvents,
            orchestrator_pb2.ListFlowEventsRequest(name=completed, page_size=2),
        ),
        (disc.ListAssets, discovery_pb2.ListAssetsRequest(page_size=3)),
        (
            disc.ListAssets,
            discovery_pb2.ListAssetsRequest(
                page_size=2, asset_type=discovery_pb2.ASSET_TYPE_SERVER
            ),
        ),
        (disc.ListDependencies, discovery_pb2.ListDependenciesRequest(page_size=3)),
    ]
    for call, request in listings:
        page = await call(request, metadata=md(tenant))
        if page.next_page_token:
            path = paths[request.DESCRIPTOR.full_name]
            pools.add_continuation(path, request.SerializeToString(), page.next_page_token)
    for flow in (completed, waiting_flow):
        mappings = await disc.ListFieldMappings(
            discovery_pb2.ListFieldMappingsRequest(master_flow=flow), metadata=md(tenant)
        )
        pools.add(pools.etags, mappings.etag)
        for attribute in mappings.target_attributes:
            pools.add(pools.attributes, attribute)
    for column in (*small.columns, *big.columns):
        pools.add(pools.columns, column)
    assert pools.tokens and pools.etags and pools.names["assets"], pools
    return Seeded(tenant, other, pools, completed, waiting_flow, failed)


def plan(rng: random.Random, methods: list[Method], total: int) -> list[tuple[Method, str]]:
    """``total`` (method, kind) pairs: every method equally often, kinds by weight."""
    out: list[tuple[Method, str]] = []
    kinds, weights = list(KINDS), list(KINDS.values())
    while len(out) < total:
        shuffled = list(methods)
        rng.shuffle(shuffled)
        out += [(m, rng.choices(kinds, weights)[0]) for m in shuffled]
    return out[:total]


def _accepted(outcome: Outcome) -> bool:
    return outcome.code == grpc.StatusCode.OK or bool(outcome.ours and outcome.responses)


def _refused(outcome: Outcome) -> bool:
    """Answered with an error (a stream we closed ourselves is neither accepted nor refused)."""
    return not outcome.ours and outcome.code != grpc.StatusCode.OK


def _wrote(outcome: Outcome) -> bool:
    return outcome.case.method.writes and _accepted(outcome)


async def _compare(
    driver: Driver, rows: Rows, report: Report, before: Snapshot, outcomes: list[Outcome]
) -> Snapshot | None:
    """After a batch in which nothing that writes was accepted: no row may have changed."""
    after = await rows.snapshot()
    diff = changes(before, after)
    report.batches_compared += 1
    refused = sum(_refused(o) for o in outcomes)
    if not diff:
        report.refused_row_checked += refused
        return after
    report.row_failures.append(
        f"batch {report.batches}: {refused} refused and only reads accepted, yet {', '.join(diff)}"
    )
    await _isolate(driver, rows, [o.case for o in outcomes if _refused(o)], report)
    return await rows.quiet()


async def _isolate(driver: Driver, rows: Rows, cases: list[Case], report: Report) -> None:
    """Replay a batch's cases one at a time to find which refused request changed rows."""
    if await rows.quiet(timeout=10) is None:
        report.row_failures.append("  (could not isolate: the services stayed busy)")
        return
    for case in cases[:300]:
        before = await rows.snapshot()
        outcome = await driver.send(case)
        if _accepted(outcome):
            if outcome.case.method.writes and await rows.quiet(timeout=10) is None:
                break
            continue
        diff = changes(before, await rows.snapshot())
        if diff:
            report.row_failures.append(
                f"  {case.method.short} ({case.kind}: {case.note}) answered {outcome.code.name}"
                f" {outcome.details[:160]!r} yet changed {diff}; request: {case.text[:400]};"
                f" metadata: {_meta_text(case)}"
            )
            return
    report.row_failures.append("  (no single refused request reproduced the change)")


async def run(
    stack: Stack,
    seeded: Seeded,
    rows: Rows,
    *,
    seed: int,
    total: int,
    batch: int = 250,
    concurrency: int = 48,
) -> Report:
    rng = random.Random(seed)
    methods = public_methods()
    samples = [INVENTORY.read_bytes(), CMDB.read_bytes()[:6000]]
    fuzzer = Fuzzer(rng, seeded.pools, seeded.tenant, samples)
    harvest = Harvest(seeded.pools)
    channels = {
        "flowpair.v1.OrchestratorService": stack.channel(stack.orchestrator_port),
        "flowpair.v1.DiscoveryService": stack.channel(stack.discovery_port),
    }
    driver = Driver(channels, concurrency)
    report = Report(seed, methods, total)
    schedule = plan(rng, methods, total)
    capture = _Capture()
    logging.getLogger("flowpair").addHandler(capture)
    try:
        await _campaign(driver, rows, report, fuzzer, harvest, capture, schedule, batch)
    finally:
        logging.getLogger("flowpair").removeHandler(capture)
    await _explain(driver, report)
    report.failure_file = _write_failures(report)
    return report


def _risky(case: Case) -> bool:
    """Whether a case may well be accepted by a method that writes: such cases go in batches
    of their own, so that the other batches are all refusals and reads, compared as sent."""
    plausible = case.kind in ("valid", "mutant", "probe", "metadata") and not case.must_refuse
    return case.method.writes and plausible


@dataclass
class _Campaign:
    driver: Driver
    rows: Rows
    report: Report
    harvest: Harvest
    capture: _Capture
    before: Snapshot | None = None
    unverified: list[Case] = field(default_factory=list)

    async def send(self, cases: list[Case], clock: str) -> list[Outcome]:
        started = time.perf_counter()
        outcomes: list[Outcome] = await asyncio.gather(*(self.driver.send(c) for c in cases))
        self.report.timing[clock] += time.perf_counter() - started
        return outcomes

    async def quiet(self) -> Snapshot | None:
        started = time.perf_counter()
        found = await self.rows.quiet()
        self.report.timing["quiet"] += time.perf_counter() - started
        self.report.unquiet += found is None
        return found

    async def batch(self, cases: list[Case], *, compare: bool) -> None:
        """Send fresh cases and judge every answer. With ``compare``, and if nothing that
        writes was accepted, the rows must not have changed; else the refused cases are kept
        to be sent again in ``verify``."""
        report = self.report
        self.capture.drain()
        outcomes = await self.send(cases, "fresh")
        report.batches += 1
        found: list[Failure] = []
        for outcome in outcomes:
            method = outcome.case.method
            report.sent += 1
            report.kinds[outcome.case.kind] += 1
            report.codes[method.short][outcome.code.name] += 1
            found += judge(outcome)
            self.harvest.take(outcome)
            report.refused += _refused(outcome)
            report.client_lost += outcome.details == CLIENT_LOST_STATUS
        _attribute(found, self.capture.drain())
        report.failures += found
        if compare and self.before is not None and not any(_wrote(o) for o in outcomes):
            self.before = await _compare(self.driver, self.rows, report, self.before, outcomes)
            return
        self.unverified += [o.case for o in outcomes if _refused(o)]
        self.before = await self.quiet() if compare else None

    async def verify(self, batch: int) -> None:
        """Send the refused cases of batches that also had writes accepted again, in batches
        of their own once the services are quiet: each such batch must change no row. A case
        accepted this time (the state moved on) makes its batch unusable; the others of that
        batch are tried once more."""
        pending, self.unverified = self.unverified, []
        for _ in range(3):
            again: list[Case] = []
            for start in range(0, len(pending), batch):
                if self.before is None:
                    self.before = await self.quiet()
                    if self.before is None:
                        return
                replies = await self.send(pending[start : start + batch], "again")
                self.report.replayed += len(replies)
                if any(_wrote(o) for o in replies):
                    again += [o.case for o in replies if _refused(o)]
                    self.before = None
                else:
                    self.before = await _compare(
                        self.driver, self.rows, self.report, self.before, replies
                    )
            if not again:
                return
            pending = again


async def _campaign(
    driver: Driver,
    rows: Rows,
    report: Report,
    fuzzer: Fuzzer,
    harvest: Harvest,
    capture: _Capture,
    schedule: list[tuple[Method, str]],
    batch: int,
) -> None:
    """Cases that may well be accepted by a writing method go first, back to back; the
    others (refusals, mostly, and reads) then in batches compared as sent; at the end the
    refusals of batches that had writes accepted are sent again, to be compared too."""
    started = time.perf_counter()
    run = _Campaign(driver, rows, report, harvest, capture)
    safe: list[Case] = []
    risky: list[Case] = []
    for method, kind in schedule:
        case = fuzzer.case(method, kind)
        (risky if _risky(case) else safe).append(case)
        if len(risky) >= batch:
            await run.batch(risky, compare=False)
            risky = []
    await run.batch(risky, compare=False)
    run.before = await run.quiet()
    for start in range(0, len(safe), batch):
        await run.batch(safe[start : start + batch], compare=True)
    await run.verify(batch)
    report.seconds = time.perf_counter() - started


class _Capture(logging.Handler):
    """The servers' "unhandled error in <method>" records, which carry the exception."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "flowpair.rpc" and record.exc_info:
            self.records.append(record)

    def drain(self) -> dict[str, set[str]]:
        """The causes logged since the last drain, by method path."""
        found: dict[str, set[str]] = defaultdict(set)
        for record in self.records:
            path = str(record.args[0]) if isinstance(record.args, tuple) and record.args else ""
            found[path].add(shape(_cause(record)))
        self.records.clear()
        return found


def _attribute(failures: list[Failure], causes: dict[str, set[str]]) -> None:
    """Name the logged exception of an INTERNAL answer when its method logged only one kind
    of exception in the batch (the others are replayed alone by ``_explain``)."""
    for f in failures:
        if f.rule == "no INTERNAL/UNKNOWN/DATA_LOSS" and "see server logs" in f.summary:
            found = causes.get(f.outcome.case.method.path, set())
            if len(found) == 1:
                f.category = f"{f.outcome.code.name} ← {next(iter(found))}"


def _cause(record: logging.LogRecord) -> str:
    """The exception the server logged: its type and, if it wraps one, the innermost."""
    assert record.exc_info is not None
    error = record.exc_info[1]
    if error is None:
        return record.getMessage()
    root: BaseException = error
    for _ in range(10):
        nested = root.__cause__ or root.__context__
        if nested is None:
            break
        root = nested
    first_line = (str(root).splitlines() or [""])[0][:200]
    outer = f"{type(error).__module__}.{type(error).__qualname__}"
    inner = f"{type(root).__module__}.{type(root).__qualname__}: {first_line}"
    return inner if root is error else f"{outer} ← {inner}"


async def _explain(driver: Driver, report: Report, limit: int = 80) -> None:
    """Replay one request of each INTERNAL case shape alone and take the server's logged
    exception as the failure's category, so the report names causes, not symptoms."""
    generic = [
        f
        for f in report.failures
        if f.rule == "no INTERNAL/UNKNOWN/DATA_LOSS"
        and "see server logs" in f.summary
        and " ← " not in f.category
    ]
    by_where: dict[str, list[Failure]] = defaultdict(list)
    for f in generic:
        by_where[f.where].append(f)
    capture = _Capture()
    logger = logging.getLogger("flowpair")
    logger.addHandler(capture)
    try:
        for where, found in list(by_where.items())[:limit]:
            cause = f"{found[0].outcome.code.name} (not reproduced alone: {where})"
            for example in found[:3]:
                capture.records.clear()
                outcome = await driver.send(example.outcome.case)
                if outcome.code == example.outcome.code and capture.records:
                    cause = f"{outcome.code.name} ← {shape(_cause(capture.records[-1]))}"
                    break
            for f in found:
                f.category = cause
    finally:
        logger.removeHandler(capture)


def _write_failures(report: Report) -> Path | None:
    if not report.failures:
        return None
    out = ROOT / ".data" / "fuzz" / f"failures-{report.seed}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for failure in report.failures:
            c, o = failure.outcome.case, failure.outcome
            record = {
                "rule": failure.rule,
                "category": failure.category,
                "summary": failure.summary,
                "method": c.method.path,
                "kind": c.kind,
                "note": c.note,
                "code": o.code.name,
                "details": o.details,
                "metadata": None
                if c.metadata is None
                else [[k, v.hex() if isinstance(v, bytes) else v] for k, v in c.metadata],
                "payloads_hex": [p.hex() for p in c.payloads],
                "request": c.text,
            }
            f.write(json.dumps(record) + "\n")
    return out
