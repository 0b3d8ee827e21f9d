"""One chaos run: set up, load under chaos, settle, check, report."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from flowpair_shared.db import asyncpg_dsn
from flowpair_shared.domain import FlowStatus
from tests.chaos.checks import Violations, check_rpc, check_sql, settled
from tests.chaos.cluster import Chaos, Cluster, Postgres
from tests.chaos.load import Client, Load, Scenario
from tests.support import ROOT

DEFAULT_CSV = Path(__file__).with_name("inventory.csv")


@dataclass(frozen=True, kw_only=True)
class Config:
    flows: int = 1000
    flows_per_engagement: int = 3
    concurrency: int = 32
    kill_interval: float = 4.0
    pg_interval: float = 30.0
    pg_first: float = 10.0
    pg_down: float = 2.0
    max_pg_restarts: int | None = None
    seed: int = 1
    flow_timeout: float = 240.0
    settle_timeout: float = 180.0
    csv: Path = DEFAULT_CSV
    log_dir: Path | None = None
    keep_database: bool = False
    server_dir: str = "pg-chaos"
    """The embedded server's directory under .data/ (its own per concurrent run)."""
    late_cancels: bool = True
    """Some cancels aimed at the last phases (the cancel/last-phase race of issue 9)."""


@dataclass
class Report:
    config: Config
    violations: Violations = field(default_factory=Violations)
    lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.violations.total == 0

    def text(self) -> str:
        return "\n".join(self.lines)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _log_findings(log_dir: Path) -> dict[str, Counter[str]]:
    """Error and warning lines of each service log, by message."""
    found: dict[str, Counter[str]] = {}
    for path in sorted(log_dir.glob("*.log")):
        counts: Counter[str] = Counter()
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                if line.startswith("Traceback"):
                    counts["(traceback outside the JSON log)"] += 1
                continue
            if isinstance(record, dict) and record.get("level") in ("error", "critical"):
                counts[str(record.get("msg"))[:120]] += 1
        found[path.stem] = counts
    return found


async def run(config: Config) -> Report:
    report = Report(config)
    out = report.lines.append
    rng = random.Random(config.seed)
    log_dir = config.log_dir or Path(tempfile.mkdtemp(prefix="flowpair-chaos-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    postgres = Postgres(config.server_dir)
    await postgres.prepare()
    database_url = await postgres.create_database()
    cluster = Cluster(database_url, log_dir)
    client: Client | None = None
    t0 = time.monotonic()
    try:
        await cluster.start()
        client = Client(cluster.orchestrator_ports, cluster.discovery_ports, rng)
        load = Load(
            client,
            config.csv.read_bytes(),
            flows=config.flows,
            flows_per_engagement=config.flows_per_engagement,
            concurrency=config.concurrency,
            flow_timeout=config.flow_timeout,
            rng=rng,
            late_cancels=config.late_cancels,
        )
        chaos = Chaos(
            cluster,
            postgres,
            random.Random(config.seed + 1),
            kill_interval=config.kill_interval,
            pg_interval=config.pg_interval,
            pg_first=config.pg_first,
            pg_down=config.pg_down,
            max_pg_restarts=config.max_pg_restarts,
        )
        chaos_task = asyncio.create_task(chaos.run())
        t_load = time.monotonic()
        await load.run()
        load_s = time.monotonic() - t_load
        chaos.stop()
        await chaos_task

        # -- settle ---------------------------------------------------------------------------
        t_settle = time.monotonic()
        left = {
            r.name
            for r in load.runs
            if r.scenario in (Scenario.LEAVE_WAITING, Scenario.LEAVE_PAUSED)
        }
        unfinished_after_chaos = sum(1 for r in load.runs if r.acknowledged and not r.done)
        await load.finish(config.settle_timeout)
        deadline = time.monotonic() + config.settle_timeout
        while time.monotonic() < deadline:
            try:
                conn = await asyncpg.connect(asyncpg_dsn(database_url))
                try:
                    state = await settled(conn, left)
                finally:
                    await conn.close()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await asyncio.sleep(0.5)  # another chaos run's restart, say
                continue
            if not any(state.values()):
                break
            await asyncio.sleep(0.5)
        settle_s = time.monotonic() - t_settle

        # -- check ----------------------------------------------------------------------------
        v = report.violations
        sql = await check_sql(database_url, load.runs, v)
        rpc_calls = await check_rpc(load, sql, v)
        exits = cluster.stop()
        bad_exits = {n: c for n, c in exits.items() if c != 0}
        if bad_exits:
            v.check("replicas stop cleanly (SIGTERM)").append(f"exit codes {bad_exits}")
        else:
            v.check("replicas stop cleanly (SIGTERM)")
        v.by_check["every killed replica and PostgreSQL came back"] = list(chaos.errors)
        client_errors = [f"flow {r.name or r.index}: {r.error}" for r in load.runs if r.error]
        v.by_check["client scripts finished"] = client_errors

        # -- report ---------------------------------------------------------------------------
        scenarios = Counter(r.scenario.value for r in load.runs)
        out(f"== flowpair chaos report (seed {config.seed}) ==")
        out(
            f"replicas: 2 orchestrator + 2 discovery; flows {config.flows} on"
            f" {len(load.tenants)} engagements ({config.flows_per_engagement} per engagement,"
            f" one upload each), concurrency {config.concurrency}, CSV {_shown(config.csv)}"
        )
        out("scenarios: " + ", ".join(f"{k} {n}" for k, n in sorted(scenarios.items())))
        kills = {r.name: r.kills for r in cluster.replicas}
        out(
            f"chaos: {sum(kills.values())} SIGKILLs"
            f" ({', '.join(f'{k} {n}' for k, n in kills.items())}),"
            f" every ~{config.kill_interval:g}s; PostgreSQL restarts"
            f" {sum(postgres.restarts.values())} ({dict(postgres.restarts)}), down"
            f" {postgres.down_seconds:.1f}s in all (pg_ctl start retried"
            f" {postgres.start_retries}x);"
            " failed restarts of a replica"
            f" {sum(r.failed_starts for r in cluster.replicas)}"
        )
        out(
            f"time: load under chaos {load_s:.1f}s, settle {settle_s:.1f}s, total"
            f" {time.monotonic() - t0:.1f}s; flows not yet where their script leaves them when"
            f" the chaos stopped: {unfinished_after_chaos}"
        )
        acked = sum(1 for r in load.runs if r.acknowledged)
        out(
            f"creates: acknowledged {acked}/{config.flows}, CreateFlow attempts"
            f" {sum(r.create_attempts for r in load.runs)}, committed but unacknowledged"
            f" {sql['committed_unacknowledged']}; uploads {load.uploads}"
        )
        out(
            "auto-approve flows that waited for a person instead:"
            f" {sum(1 for r in load.runs if r.auto_refused)}"
            f" of {sum(1 for r in load.runs if r.auto_approve)}"
        )
        out(
            "client retries by code: "
            + (", ".join(f"{k} {n}" for k, n in client.retries.most_common()) or "none")
        )
        if client.unexpected:
            out(f"unexpected codes the client retried ({len(client.unexpected)}):")
            for text, n in Counter(client.unexpected).most_common(8):
                out(f"  {n}x {text[:200]}")
        out(
            f"database: flows {sql['flows']}, child flows {sql['children']}; statuses "
            + ", ".join(f"{k} {n}" for k, n in sql["statuses"].items())
        )
        ob = sql["outbox"]
        out(
            f"outbox: {ob.get('total')} messages, delivered {ob.get('delivered')}, parked"
            f" {ob.get('parked')}, most attempts for one {ob.get('max_attempts')}"
        )
        for p in sql["parked"][:10]:
            out(f"  parked: {p[:240]}")
        out(f"assets: {sql['assets']} in {sql['engagements_with_assets']} engagements")
        out(f"RPC checks: {rpc_calls} calls (GetFlow + ListFlowEvents per flow, ListAssets)")
        for name, counts in _log_findings(log_dir).items():
            if counts:
                top = "; ".join(f"{n}x {m}" for m, n in counts.most_common(4))
                out(f"log errors {name}: {sum(counts.values())} ({top})")
        out("invariants:")
        for name, found in v.by_check.items():
            out(
                f"  [{'ok' if not found else 'FAIL'}] {name}" + (f": {len(found)}" if found else "")
            )
            for problem in found[:15]:
                out(f"      {problem[:300]}")
            if len(found) > 15:
                out(f"      ... {len(found) - 15} more")
        out(f"logs: {log_dir}")
        out(f"chaos timeline: {len(chaos.events)} events; " + " | ".join(chaos.events[:6]))
        out("RESULT: " + ("PASS" if report.ok else f"FAIL ({v.total} violations)"))
        return report
    finally:
        if client is not None:
            await client.close()
        cluster.stop()
        if not config.keep_database:
            with contextlib.suppress(Exception):  # the report matters more than the cleanup
                await postgres.drop_database(database_url)


def describe(status: int) -> str:
    return FlowStatus(status).name


def summary(report: Report) -> dict[str, Any]:
    return {name: len(found) for name, found in report.violations.by_check.items()}
