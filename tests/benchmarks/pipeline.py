"""The big-file pipeline: a generated CMDB export from upload to COMPLETED, auto-approved, with
the seconds of every phase and a digest of the inventory it built.

    python tests/benchmarks/pipeline.py --rows 200000 [--against ../main-worktree] [--rounds 2]

Each journey runs in its own process against a fresh database with both services started as
deployed. With ``--against DIR`` the rounds alternate between this checkout and DIR (another
worktree, its protos generated), so the two are measured under the same load; the digests say
whether both built the same inventory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from flowpair_shared.db import asyncpg_dsn
from tests.benchmarks.__main__ import run_journey, scratch_database, services
from tests.support import ROOT

Json = dict[str, Any]

# What a client sees of the inventory, without ids or times: equal digests, equal inventories.
_DIGEST = """
SELECT md5(coalesce((SELECT string_agg(row(a.dedupe_key, a.asset_type, a.display_name,
          a.hostname, a.domain, a.ip_address, a.operating_system, a.os_family, a.os_version,
          a.cpu_cores, a.memory_gb, a.storage_gb, a.environment, a.application_name, a.owner,
          a.location, a.business_criticality, a.serial_number, a.attributes)::text, '|'
          ORDER BY a.dedupe_key) FROM discovery.assets a WHERE a.engagement_id = $1), '')
       || coalesce((SELECT string_agg(row(s.dedupe_key, t.dedupe_key, d.kind,
          regexp_replace(d.evidence, 'imports/[0-9a-f-]+', 'imports'))::text,
          '|' ORDER BY s.dedupe_key, t.dedupe_key, d.kind) FROM discovery.dependencies d
          JOIN discovery.assets s ON s.id = d.source_asset_id
          JOIN discovery.assets t ON t.id = d.target_asset_id WHERE d.engagement_id = $1), '')
       || coalesce((SELECT string_agg(row(i.row_number, i.attribute, i.value, i.problem)::text,
          '|' ORDER BY i.row_number, i.attribute, i.value, i.problem)
          FROM discovery.cleansing_issues i JOIN discovery.child_flows c ON c.id = i.child_flow_id
          WHERE c.engagement_id = $1), '')) AS digest,
       (SELECT count(*) FROM discovery.assets WHERE engagement_id = $1) AS assets,
       (SELECT count(*) FROM discovery.dependencies WHERE engagement_id = $1) AS dependencies
"""


async def journey(url: str, rows: int, logs: Path) -> Json:
    """Upload ``rows`` rows, run an auto-approved flow to COMPLETED: per-phase seconds from the
    flow's events, and the inventory's digest."""
    async with services(url, logs) as (stack, _orch, _disc):
        tenant, result = await run_journey(stack, rows)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        inventory = dict(await conn.fetchrow(_DIGEST, tenant.engagement_id) or {})
    finally:
        await conn.close()
    phases = {name: round(seconds, 1) for name, seconds in result["phases"].items()}
    return {**result, "seconds": round(result["seconds"], 1), "phases": phases, **inventory}


async def one(rows: int, keep: bool) -> Json:
    async with scratch_database("flowpair_pipeline", keep=keep) as url:
        logs = Path(tempfile.mkdtemp(prefix="flowpair-pipeline-"))
        return {
            "code": str(ROOT),
            "database": urlsplit(url).path.lstrip("/"),
            **await journey(url, rows, logs),
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--against", type=Path, help="another checkout, measured alternately")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the databases (to EXPLAIN in them)")
    p.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.single:
        print(json.dumps(asyncio.run(one(args.rows, args.keep)), default=str), flush=True)
        return
    checkouts = [ROOT] + ([args.against.resolve()] if args.against else [])
    for round_ in range(args.rounds):
        for code in checkouts if round_ % 2 == 0 else checkouts[::-1]:
            out = subprocess.run(
                [
                    sys.executable,
                    # The tree's own script: an older tree's benchmark helpers are its own.
                    str(code / "tests" / "benchmarks" / "pipeline.py"),
                    "--rows",
                    str(args.rows),
                    "--single",
                    *(["--keep"] if args.keep else []),
                ],
                env={**os.environ, "PYTHONPATH": str(code)},
                cwd=code,
                capture_output=True,
                text=True,
            )
            if out.returncode:
                print(json.dumps({"code": str(code), "failed": out.stderr[-3000:]}), flush=True)
            else:
                print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
