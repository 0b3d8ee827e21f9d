"""The invariants, checked after the chaos has stopped and the system has settled: in SQL (as
the owner, past row-level security) and through the public RPCs."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from flowpair.v1 import discovery_pb2, flow_pb2, orchestrator_pb2
from flowpair_shared.db import asyncpg_dsn
from flowpair_shared.domain import (
    FLOW_TRANSITIONS,
    PHASE_TRANSITIONS,
    FlowEventKind,
    FlowStatus,
    Phase,
    PhaseStatus,
)
from tests.chaos.load import Failed, FlowRun, Load
from tests.support import md

S = flow_pb2


@dataclass
class Violations:
    """Violations by invariant; every invariant is listed, with none when it holds."""

    by_check: dict[str, list[str]] = field(default_factory=dict)

    def check(self, name: str) -> list[str]:
        return self.by_check.setdefault(name, [])

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.by_check.values())


async def settled(conn: asyncpg.Connection, left: set[str]) -> dict[str, int]:
    """What still moves: undelivered outbox rows, live phase jobs, flows in motion, and flows
    waiting or paused that no script left so."""
    row = await conn.fetchrow(
        """
        SELECT
          (SELECT count(*) FROM messaging.outbox
           WHERE delivered_at IS NULL AND parked_at IS NULL) AS undelivered,
          (SELECT count(*) FROM discovery.phase_jobs
           WHERE state IN ('queued', 'running')) AS live_jobs,
          (SELECT count(*) FROM orchestrator.flows WHERE status IN (1, 2)) AS moving
        """
    )
    assert row is not None
    waiting = await conn.fetch("SELECT id FROM orchestrator.flows WHERE status IN (3, 4)")
    unexplained = sum(1 for r in waiting if f"flows/{r['id']}" not in left)
    return {**dict(row), "waiting_unexplained": unexplained}


def _legal_phase_walk(events: list[asyncpg.Record]) -> list[str]:
    """Each phase's reported statuses follow the phase transition table, none repeated."""
    problems = []
    current: dict[int, PhaseStatus] = defaultdict(lambda: PhaseStatus.PENDING)
    seen: set[tuple[int, int]] = set()
    for e in events:
        if e["kind"] != FlowEventKind.PHASE_CHANGED:
            continue
        phase, status = e["phase"], PhaseStatus(e["phase_status"])
        if (phase, status) in seen:
            problems.append(f"duplicated transition {Phase(phase).name}->{status.name}")
        seen.add((phase, status))
        if status not in PHASE_TRANSITIONS[current[phase]]:
            problems.append(
                f"illegal {Phase(phase).name} {current[phase].name}->{status.name} at seq"
                f" {e['seq']}"
            )
        current[phase] = status
    return problems


def _legal_flow_walk(events: list[asyncpg.Record]) -> list[str]:
    problems = []
    previous = FlowStatus.INITIALIZING
    for e in events:
        status = FlowStatus(e["flow_status"])
        if status != previous and status not in FLOW_TRANSITIONS[previous]:
            problems.append(f"illegal flow {previous.name}->{status.name} at seq {e['seq']}")
        previous = status
    return problems


async def check_sql(database_url: str, runs: list[FlowRun], v: Violations) -> dict[str, Any]:
    """Every SQL invariant; returns counts for the report."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return await _check_sql(conn, runs, v)
    finally:
        await conn.close()


async def _check_sql(
    conn: asyncpg.Connection, runs: list[FlowRun], v: Violations
) -> dict[str, Any]:
    flows = {
        f"flows/{r['id']}": r
        for r in await conn.fetch(
            "SELECT id, request_id, status, current_phase, child_flow_id, last_event_seq,"
            " history_seq, engagement_id FROM orchestrator.flows"
        )
    }
    children = await conn.fetch(
        "SELECT id, master_flow_id, status, event_seq FROM discovery.child_flows"
    )
    by_master: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for c in children:
        by_master[f"flows/{c['master_flow_id']}"].append(c)

    # -- every acknowledged create present, once, under its request id ----------------------
    acked = v.check("every acknowledged create present")
    by_request = {str(r["request_id"]): name for name, r in flows.items() if r["request_id"]}
    for run in runs:
        if not run.acknowledged:
            if run.request_id in by_request:
                continue  # committed, never answered: counted in the report
            continue
        if run.name not in flows:
            acked.append(f"{run.name} (request {run.request_id}) acknowledged but absent")
        elif by_request.get(run.request_id) != run.name:
            acked.append(
                f"request {run.request_id} answered {run.name} but stored as"
                f" {by_request.get(run.request_id)}"
            )
    ours = {r.request_id for r in runs}
    strangers = [n for n, r in flows.items() if str(r["request_id"]) not in ours]
    for name in strangers:
        acked.append(f"{name}: a flow no request of the client created")

    # -- exactly one child per master -----------------------------------------------------
    one = v.check("exactly one child per master")
    for name, f in flows.items():
        kids = by_master.get(name, [])
        if len(kids) != 1:
            one.append(f"{name}: {len(kids)} child flows")
        elif f["child_flow_id"] != kids[0]["id"]:
            one.append(f"{name}: linked to {f['child_flow_id']}, child is {kids[0]['id']}")
    for master in by_master:
        if master not in flows:
            one.append(f"child of {master}, which does not exist")

    # -- nothing stuck ----------------------------------------------------------------------
    stuck = v.check("nothing stuck")
    agree = v.check("master and child agree (final status, phases, events applied)")
    runs_by_name = {r.name: r for r in runs if r.acknowledged}
    for name, f in flows.items():
        known = runs_by_name.get(name)
        status = f["status"]
        if known is not None and status not in known.expected():
            stuck.append(
                f"{name} ({known.scenario.value}): {FlowStatus(status).name}, expected"
                f" {'/'.join(FlowStatus(s).name for s in sorted(known.expected()))}"
                + (f"; client: {known.error}" if known.error else "")
            )
        kids = by_master.get(name, [])
        if len(kids) == 1 and f["last_event_seq"] != kids[0]["event_seq"]:
            agree.append(
                f"{name}: applied {f['last_event_seq']} of the child's {kids[0]['event_seq']}"
                " events"
            )
    jobs = await conn.fetch(
        "SELECT j.child_flow_id, j.phase, j.state, j.attempts FROM discovery.phase_jobs j"
        " WHERE j.state IN ('queued', 'running')"
    )
    for j in jobs:
        stuck.append(
            f"phase job {Phase(j['phase']).name} of child {j['child_flow_id']} still"
            f" {j['state']} (attempts {j['attempts']})"
        )
    mismatch = await conn.fetch(
        """
        SELECT f.id, f.status AS master, c.status AS child
        FROM orchestrator.flows f JOIN discovery.child_flows c ON c.master_flow_id = f.id
        WHERE f.status IN (5, 6, 7) AND c.status <> f.status
        """
    )
    for m in mismatch:
        agree.append(
            f"flows/{m['id']}: master {FlowStatus(m['master']).name}, child"
            f" {FlowStatus(m['child']).name}"
        )
    phases = await conn.fetch(
        """
        SELECT f.id, p.phase, p.status AS master, cp.status AS child
        FROM orchestrator.flows f
        JOIN orchestrator.flow_phases p ON p.flow_id = f.id
        JOIN discovery.child_flows c ON c.master_flow_id = f.id
        JOIN discovery.child_phases cp ON cp.child_flow_id = c.id AND cp.phase = p.phase
        WHERE p.status <> cp.status
        """
    )
    for p in phases:
        agree.append(
            f"flows/{p['id']}: {Phase(p['phase']).name} is {PhaseStatus(p['master']).name} in"
            f" the orchestrator, {PhaseStatus(p['child']).name} in discovery"
        )

    # -- contiguous histories, no duplicated transition -----------------------------------
    hist = v.check("contiguous histories, no duplicated transition")
    events: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for e in await conn.fetch(
        "SELECT flow_id, seq, kind, phase, phase_status, flow_status, source_sequence"
        " FROM orchestrator.flow_events ORDER BY flow_id, seq"
    ):
        events[f"flows/{e['flow_id']}"].append(e)
    for name, f in flows.items():
        es = events.get(name, [])
        seqs = [e["seq"] for e in es]
        if seqs != list(range(1, len(es) + 1)) or len(es) != f["history_seq"]:
            hist.append(f"{name}: history seqs {seqs}, history_seq {f['history_seq']}")
        sources = [e["source_sequence"] for e in es if e["source_sequence"] is not None]
        if sources != list(range(1, f["last_event_seq"] + 1)):
            hist.append(f"{name}: child events {sources}, last_event_seq {f['last_event_seq']}")
        if not es or es[0]["kind"] != FlowEventKind.CREATED:
            hist.append(f"{name}: history does not start with CREATED")
        hist.extend(f"{name}: {p}" for p in _legal_phase_walk(es) + _legal_flow_walk(es))
        if es and es[-1]["flow_status"] != f["status"]:
            hist.append(
                f"{name}: last history entry says {FlowStatus(es[-1]['flow_status']).name},"
                f" flow is {FlowStatus(f['status']).name}"
            )

    # -- no duplicated assets -------------------------------------------------------------
    assets_v = v.check("no duplicated assets")
    orphans = await conn.fetchval(
        "SELECT count(*) FROM discovery.assets a"
        " WHERE NOT EXISTS (SELECT 1 FROM discovery.asset_sources s WHERE s.asset_id = a.id)"
    )
    if orphans:
        assets_v.append(f"{orphans} assets without a source row")
    sets = await conn.fetch(
        """
        SELECT c.engagement_id, c.id, array_agg(DISTINCT s.asset_id ORDER BY s.asset_id) AS ids
        FROM discovery.child_flows c
        JOIN discovery.child_phases p ON p.child_flow_id = c.id AND p.phase = 6 AND p.status = 3
        JOIN discovery.asset_sources s ON s.child_flow_id = c.id
        GROUP BY 1, 2
        """
    )
    per_engagement: dict[Any, set[tuple[Any, ...]]] = defaultdict(set)
    for s in sets:
        per_engagement[s["engagement_id"]].add(tuple(s["ids"]))
    for engagement, built in per_engagement.items():
        if len(built) > 1:
            assets_v.append(
                f"engagement {engagement}: flows on the same import built different asset sets"
                f" (sizes {sorted(len(x) for x in built)})"
            )
    counts = await conn.fetch(
        "SELECT engagement_id, count(*) AS n FROM discovery.assets GROUP BY 1"
    )
    # The same CSV in every engagement: an engagement with more assets than the others has
    # duplicates (fewer: lost ones). Only engagements where a flow completed ASSET_INVENTORY:
    # a cancelled one may stop halfway through a progressively committed inventory.
    inventoried = [c for c in counts if c["engagement_id"] in per_engagement]
    usual = Counter(c["n"] for c in inventoried).most_common(1)
    for c in inventoried:
        if usual and c["n"] != usual[0][0]:
            assets_v.append(
                f"engagement {c['engagement_id']}: {c['n']} assets, the other engagements"
                f" {usual[0][0]}"
            )
    for c in counts:
        sets_built = per_engagement.get(c["engagement_id"], set())
        if len(sets_built) == 1 and c["n"] != len(next(iter(sets_built))):
            assets_v.append(
                f"engagement {c['engagement_id']}: {c['n']} assets, the flows built"
                f" {len(next(iter(sets_built)))}"
            )

    # -- every outbox message delivered or parked -----------------------------------------
    out = v.check("every outbox message delivered or parked")
    for r in await conn.fetch(
        "SELECT source, method, ordering_key, seq, attempts, last_error FROM messaging.outbox"
        " WHERE delivered_at IS NULL AND parked_at IS NULL"
    ):
        out.append(
            f"{r['source']} {r['method'].rsplit('/', 1)[-1]} for flows/{r['ordering_key']} seq"
            f" {r['seq']} undelivered after {r['attempts']} attempts: {r['last_error']}"
        )
    missing_inbox = await conn.fetch(
        """
        SELECT o.source, o.method, o.ordering_key, o.seq FROM messaging.outbox o
        WHERE o.delivered_at IS NOT NULL AND NOT EXISTS (
          SELECT 1 FROM messaging.inbox i
          WHERE i.consumer = o.destination AND i.message_id = o.message_id)
        """
    )
    for r in missing_inbox:
        out.append(
            f"{r['source']} {r['method'].rsplit('/', 1)[-1]} for flows/{r['ordering_key']} seq"
            f" {r['seq']} marked delivered, but the consumer's inbox never recorded it"
        )
    gaps = await conn.fetch(
        """
        SELECT o.source, o.ordering_key, array_agg(o.seq ORDER BY o.seq) AS seqs, s.last_seq
        FROM messaging.outbox o
        JOIN messaging.outbox_sequences s USING (source, ordering_key)
        GROUP BY o.source, o.ordering_key, s.last_seq
        """
    )
    for g in gaps:
        if list(g["seqs"]) != list(range(1, g["last_seq"] + 1)):
            out.append(f"{g['source']} key {g['ordering_key']}: seqs {g['seqs']}")
    parked = await conn.fetch(
        "SELECT source, method, ordering_key, seq, attempts, rejections, last_error"
        " FROM messaging.outbox WHERE parked_at IS NOT NULL ORDER BY id"
    )
    totals = await conn.fetchrow(
        "SELECT count(*) AS total, count(delivered_at) AS delivered, count(parked_at) AS parked,"
        " coalesce(max(attempts), 0) AS max_attempts FROM messaging.outbox"
    )
    status_counts = await conn.fetch(
        "SELECT status, count(*) AS n FROM orchestrator.flows GROUP BY 1 ORDER BY 1"
    )
    asset_total = await conn.fetchval("SELECT count(*) FROM discovery.assets")
    return {
        "flows": len(flows),
        "children": len(children),
        "committed_unacknowledged": sum(
            1 for r in runs if not r.acknowledged and r.request_id in by_request
        ),
        "statuses": {FlowStatus(r["status"]).name: r["n"] for r in status_counts},
        "outbox": dict(totals) if totals else {},
        "parked": [
            f"{p['source']} {p['method'].rsplit('/', 1)[-1]} flows/{p['ordering_key']} seq"
            f" {p['seq']} (attempts {p['attempts']}, rejections {p['rejections']}):"
            f" {p['last_error']}"
            for p in parked
        ],
        "assets": asset_total,
        "engagements_with_assets": len(counts),
        "assets_by_engagement": {c["engagement_id"]: c["n"] for c in counts},
        "events": events,
        "sql_flows": flows,
    }


def _entry(seq: int, kind: int, phase: int, phase_status: int, flow_status: int) -> tuple[int, ...]:
    """A history entry as both views can state it: the wire leaves the phase unset on
    lifecycle entries, and the phase status on all but phase changes."""
    return (
        int(seq),
        int(kind),
        int(phase) if kind in (FlowEventKind.PHASE_CHANGED, FlowEventKind.PHASE_RETRIED) else 0,
        int(phase_status) if kind == FlowEventKind.PHASE_CHANGED else 0,
        int(flow_status),
    )


async def check_rpc(
    load: Load, sql: dict[str, Any], v: Violations, *, concurrency: int = 16
) -> int:
    """GetFlow and the whole ListFlowEvents history of every flow agree with the database;
    ListAssets' total agrees with the engagement's assets. Returns the RPCs made."""
    rpc = v.check("RPC view agrees with the database")
    flows: dict[str, Any] = sql["sql_flows"]
    events: dict[str, list[asyncpg.Record]] = sql["events"]
    sem = asyncio.Semaphore(concurrency)
    calls = 0
    client = load.client

    async def one(run: FlowRun) -> None:
        nonlocal calls
        async with sem:
            try:
                flow = await load.get(run)
            except Failed as error:
                rpc.append(f"{run.name}: GetFlow: {error}")
                return
            calls += 1
            row = flows.get(run.name)
            if row is None:
                rpc.append(f"{run.name}: GetFlow answers, the database has no such flow")
                return
            if flow.status != row["status"] or flow.child_event_sequence != row["last_event_seq"]:
                rpc.append(
                    f"{run.name}: GetFlow {S.FlowStatus.Name(flow.status)} seq"
                    f" {flow.child_event_sequence}, database {FlowStatus(row['status']).name} seq"
                    f" {row['last_event_seq']}"
                )
            if flow.child_flow != f"childFlows/{row['child_flow_id']}":
                rpc.append(f"{run.name}: GetFlow child {flow.child_flow!r}")
            listed: list[flow_pb2.FlowEvent] = []
            token = ""
            while True:
                request = orchestrator_pb2.ListFlowEventsRequest(
                    name=run.name, page_size=7, page_token=token
                )

                async def call(
                    r: int, request: orchestrator_pb2.ListFlowEventsRequest = request
                ) -> orchestrator_pb2.ListFlowEventsResponse:
                    return await client.orch[r].ListFlowEvents(
                        request, metadata=md(run.tenant), timeout=client.call_timeout
                    )

                try:
                    page = await client.retrying("ListFlowEvents", call)
                except Failed as error:
                    rpc.append(f"{run.name}: ListFlowEvents: {error}")
                    return
                assert isinstance(page, orchestrator_pb2.ListFlowEventsResponse)
                calls += 1
                listed.extend(page.events)
                token = page.next_page_token
                if not token:
                    break
            got = [
                _entry(e.sequence, e.kind, e.phase, e.phase_status, e.flow_status) for e in listed
            ]
            want = [
                _entry(e["seq"], e["kind"], e["phase"], e["phase_status"], e["flow_status"])
                for e in events.get(run.name, [])
            ]
            if got != want:
                rpc.append(f"{run.name}: ListFlowEvents {got} != database {want}")

    await asyncio.gather(*(one(r) for r in load.runs if r.acknowledged))

    async def assets(i: int) -> None:
        nonlocal calls
        tenant = load.tenants[i]
        run = next(r for r in load.runs if r.tenant is tenant)

        async def call(r: int) -> discovery_pb2.ListAssetsResponse:
            return await client.disc[r].ListAssets(
                discovery_pb2.ListAssetsRequest(page_size=1),
                metadata=md(tenant),
                timeout=client.call_timeout,
            )

        async with sem:
            try:
                page = await client.retrying("ListAssets", call)
            except Failed as error:
                rpc.append(f"engagement {tenant.engagement_id}: ListAssets: {error}")
                return
        assert isinstance(page, discovery_pb2.ListAssetsResponse)
        calls += 1
        expected = sql["assets_by_engagement"].get(tenant.engagement_id, 0)
        if page.total_size != expected:
            rpc.append(
                f"engagement {tenant.engagement_id} ({run.name}): ListAssets total"
                f" {page.total_size}, database {expected}"
            )

    await asyncio.gather(*(assets(i) for i in range(len(load.tenants))))
    return calls
