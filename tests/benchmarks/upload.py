"""Upload A/B: this tree's UploadImportData against another tree's (e.g. main) and `psql \\copy`.

    python -m tests.benchmarks.upload [--rows 200000] [--runs 3] [--mb 0] [--other PATH]

Each run uploads the same generated CMDB file through this tree's discovery process, then the
other tree's, then loads it with `psql \\copy`, so the three share the machine's load of that
moment; the figures are medians of the interleaved runs. ``--mb M`` then uploads an M MB file
(generated as it is sent) to a freshly started discovery process of each tree (``--mb-this-only``:
this tree's) and reports its peak resident set (VmHWM). ``--py-spy OUT`` records this tree's
discovery process during one extra upload (py-spy must be installed). Only the discovery
service is started: an upload does not involve the orchestrator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from flowpair_shared.db import asyncpg_dsn
from tests.benchmarks.__main__ import (
    CMDB_HEADER,
    _hwm_kb,
    cmdb_bytes,
    cmdb_rows,
    median,
    pg_bin,
    read_file,
    run_program,
    scratch_database,
    write_file,
)
from tests.support import ROOT, Process, Stack, new_tenant

Json = dict[str, Any]


class _TreeProcess(Process):
    """A service process running the code of another checkout (its own cwd and PYTHONPATH)."""

    def __init__(self, tree: Path, env: dict[str, str], log_path: Path) -> None:
        self.module = "discovery_svc"
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env={**env, "PYTHONPATH": str(tree)},
            cwd=tree,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )


@contextlib.asynccontextmanager
async def discovery(url: str, tree: Path, logs: Path) -> AsyncIterator[tuple[Stack, Process]]:
    await asyncio.to_thread(logs.mkdir, parents=True, exist_ok=True)
    stack = Stack(url)
    proc = _TreeProcess(tree, stack.env(), logs / "discovery.log")
    try:
        await proc.wait_serving(stack.discovery_port)
        yield stack, proc
    finally:
        await stack.close()
        with contextlib.suppress(Exception):
            proc.terminate()
        proc.close()


async def timed_upload(stack: Stack, path: Path, rows: int) -> float:
    began = time.perf_counter()
    imp = await stack.upload(new_tenant(), read_file(path))
    seconds = time.perf_counter() - began
    assert imp.row_count == rows, imp
    return rows / seconds


async def ab(url: str, args: argparse.Namespace, work: Path) -> Json:
    path = work / "upload.csv"
    size = write_file(path, cmdb_rows(args.rows))
    dsn = asyncpg_dsn(url)
    columns = ", ".join(f"c{i} text" for i in range(CMDB_HEADER.count(b",") + 1))
    await run_program(pg_bin("psql"), dsn, "-qc", f"CREATE TABLE public.bench_copy ({columns})")
    copy = f"\\copy public.bench_copy FROM '{path}' WITH (FORMAT csv, HEADER true)"

    async def one_copy() -> float:
        _, seconds = await run_program(pg_bin("psql"), dsn, "-qc", copy)
        await run_program(pg_bin("psql"), dsn, "-qc", "TRUNCATE public.bench_copy")
        rows: int = args.rows
        return rows / seconds

    result: Json = {"rows": args.rows, "bytes": size, "this": [], "other": [], "psql": []}
    async with (
        discovery(url, ROOT, work / "this") as (this, this_proc),
        discovery(url, args.other, work / "other") as (other, _),
    ):
        await one_copy()  # warm-up: page cache, the table's first extents, both processes
        await timed_upload(this, path, args.rows)
        await timed_upload(other, path, args.rows)
        for _ in range(args.runs):
            result["this"].append(await timed_upload(this, path, args.rows))
            result["other"].append(await timed_upload(other, path, args.rows))
            result["psql"].append(await one_copy())
        if args.py_spy:
            spy = await asyncio.create_subprocess_exec(
                shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                "record", "-o", args.py_spy, "--pid", str(this_proc.proc.pid),
                "--rate", "200", "--nonblocking", "--idle",
                stdout=sys.stderr,
            )  # fmt: skip
            await asyncio.sleep(1.0)
            await timed_upload(this, path, args.rows)
            spy.send_signal(2)
            await spy.wait()
    path.unlink()
    for key in ("this", "other", "psql"):
        result[f"{key}_rows_per_s"] = median(result[key])
    result["this_vs_psql"] = result["this_rows_per_s"] / result["psql_rows_per_s"]
    result["other_vs_psql"] = result["other_rows_per_s"] / result["psql_rows_per_s"]
    result["this_vs_other"] = result["this_rows_per_s"] / result["other_rows_per_s"]
    return result


async def memory(url: str, tree: Path, megabytes: int, logs: Path) -> Json:
    async with discovery(url, tree, logs) as (stack, proc):
        pid = proc.proc.pid
        began = time.perf_counter()
        imp = await stack.upload(new_tenant(), cmdb_bytes(megabytes * 2**20))
        return {
            "megabytes": megabytes,
            "rows": imp.row_count,
            "seconds": time.perf_counter() - began,
            "vmhwm_mb": _hwm_kb(pid) / 1024,
        }


async def measure(args: argparse.Namespace) -> Json:
    work = Path(tempfile.mkdtemp(prefix="flowpair-bench-upload-"))
    result: Json = {"this": str(ROOT), "other": str(args.other), "logs": str(work)}
    async with scratch_database("flowpair_bench_upload") as url:
        if args.rows:
            result["ab"] = await ab(url, args, work)
        if args.mb:
            result["memory_this"] = await memory(url, ROOT, args.mb, work / "mem-this")
            if not args.mb_this_only:
                result["memory_other"] = await memory(url, args.other, args.mb, work / "mem-other")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="0 skips the A/B")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mb", type=int, default=0, help="peak RSS during an upload this big")
    parser.add_argument("--mb-this-only", action="store_true", help="skip the other's --mb")
    parser.add_argument("--other", type=Path, default=Path("/tmp/ab-upload-main"))
    parser.add_argument("--py-spy", default="", help="py-spy record output (.svg)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args)), indent=2))


if __name__ == "__main__":
    main()
