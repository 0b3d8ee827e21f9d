"""CPU time per flow, by process: what bounds the flow rate on a small machine.

    PYTHONPATH=. .venv/bin/python -m tests.benchmarks.cpu_per_flow [--flows 400]

Both services in their own processes (as ``make bench`` runs them); after a warm-up burst,
a burst of ``--flows`` CreateFlow calls from 32 clients on a 5-row import (not auto-approved),
until every flow waits at the approval gate (IMPORT, VALIDATION and MAPPING done). Over that
window, the CPU seconds (user + system, from /proc, with exited children's) of the load client
(this process), the orchestrator, the discovery service with its phase workers and the
database server's processes (every database's backends on it: run it on a server of its own),
per flow; and the rates that CPU allows: all processes on the machine's cores (cores / CPU
per flow), and each service's busiest process on one core (its event loop is one thread).
The harness's own wait for the gate (a query every 50 ms) is counted in the client and the
server. ``--py-spy DIR`` also records both services
(the discovery service with its phase workers) during the measured burst, as collapsed stacks
(``<service>.folded``: one line per stack and its sample count; grep it, or draw it with
flamegraph.pl, inferno-flamegraph or speedscope). One sampler per service: each disturbs
the figures printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from flowpair_shared.db import asyncpg_dsn
from tests.benchmarks.__main__ import (
    closed_loop,
    create_flows,
    proc_stat,
    process_tree,
    scratch_database,
    services,
    small_import,
    until_gated,
)
from tests.support import new_tenant

_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    """User + system seconds of ``pid`` and of its children that exited and were waited for."""
    try:
        fields = proc_stat(pid)
    except (OSError, ValueError):
        return 0.0
    return sum(int(f) for f in fields[11:15]) / _TICK


def snapshot(orchestrator: int, discovery: int, postmaster: int) -> dict[str, float]:
    """CPU seconds so far per group: each service's process tree, the database server's."""
    return {
        "client": sum(os.times()[:4]),
        "orchestrator": sum(_cpu(p) for p in process_tree(orchestrator)),
        "discovery": sum(_cpu(p) for p in process_tree(discovery)),
        "postgres": sum(_cpu(p) for p in process_tree(postmaster)),
    }


def _record(pid: int, out: Path) -> subprocess.Popen[bytes]:
    py_spy = str(Path(sys.executable).parent / "py-spy")
    command = [py_spy, "record", "--subprocesses", "--nonblocking", "-r", "200", "-f", "raw"]
    return subprocess.Popen([*command, "-o", str(out), "--pid", str(pid)])


async def _postmaster(conn: asyncpg.Connection) -> int:
    """The database server's main process: the parent of this connection's backend."""
    backend = int(await conn.fetchval("SELECT pg_backend_pid()"))
    return int(proc_stat(backend)[1])


async def measure(flows: int, concurrency: int, py_spy: Path | None) -> dict[str, float]:
    async with scratch_database("flowpair_cpu") as url:
        logs = Path(f"/tmp/flowpair-cpu-{os.getpid()}")
        async with services(url, logs) as (stack, orch, disc):
            conn = await asyncpg.connect(asyncpg_dsn(url))
            try:
                server = await _postmaster(conn)
                result: dict[str, float] = {}
                for count in (max(100, flows // 4), flows):  # warm-up, then measured
                    tenant = new_tenant()
                    imp = await stack.upload(tenant, small_import())
                    create = await create_flows(stack, tenant, imp.name)
                    recorders = []
                    if py_spy is not None and count == flows:
                        recorders = [
                            _record(orch.proc.pid, py_spy / "orchestrator.folded"),
                            _record(disc.proc.pid, py_spy / "discovery.folded"),
                        ]
                    try:
                        before = snapshot(orch.proc.pid, disc.proc.pid, server)
                        began = time.time()
                        await closed_loop(count, concurrency, create)
                        times = await until_gated(conn, tenant.engagement_id, count)
                        after = snapshot(orch.proc.pid, disc.proc.pid, server)
                    finally:
                        for recorder in recorders:
                            recorder.send_signal(2)  # py-spy writes its graph on SIGINT
                            await asyncio.to_thread(recorder.wait)
                    wall = times["last_gated"].timestamp() - began
                    result = {k: (after[k] - before[k]) / count * 1e3 for k in before}
                    result["wall_ms"] = wall / count * 1e3
            finally:
                await conn.close()
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--flows", type=int, default=400)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--py-spy", type=Path, help="a folder for both services' collapsed stacks")
    args = p.parse_args()
    if args.py_spy is not None:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    ms = asyncio.run(measure(args.flows, args.concurrency, args.py_spy))
    cores = os.cpu_count() or 1
    total = sum(v for k, v in ms.items() if k != "wall_ms")
    print(f"{args.flows} flows to the approval gate, {args.concurrency} clients, {cores} CPUs")
    print("| process | CPU ms per flow | share |")
    print("|---|---|---|")
    for key in ("client", "orchestrator", "discovery", "postgres"):
        print(f"| {key} | {ms[key]:.2f} | {ms[key] / total:.0%} |")
    print(f"| all | {total:.2f} | 100% |")
    print(
        f"\nflows at the gate: {1e3 / ms['wall_ms']:.1f}/s measured;"
        f" {cores * 1e3 / total:.1f}/s if CPU alone bounded it ({cores} CPUs / {total:.2f} ms);"
        f" the orchestrator's one process alone allows {1e3 / ms['orchestrator']:.1f}/s"
    )


if __name__ == "__main__":
    main()
