"""``python -m tests.chaos``: the chaos run behind `make chaos` (see tests/chaos/__init__.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from tests.chaos.run import DEFAULT_CSV, Config, run


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="make chaos CHAOS_ARGS=...", description=__doc__)
    p.add_argument("--flows", type=int, default=1000)
    p.add_argument("--flows-per-engagement", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--kill-interval", type=float, default=4.0, help="seconds; 0: no kills")
    p.add_argument("--pg-interval", type=float, default=30.0, help="seconds; 0: no restarts")
    p.add_argument("--pg-first", type=float, default=10.0)
    p.add_argument("--pg-down", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--flow-timeout", type=float, default=240.0)
    p.add_argument("--settle-timeout", type=float, default=180.0)
    p.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    p.add_argument("--log-dir", type=Path, default=None)
    p.add_argument("--keep-database", action="store_true")
    p.add_argument(
        "--no-late-cancels",
        action="store_true",
        help="no cancels aimed at the last phases (the cancel/last-phase race of issue 9)",
    )
    a = p.parse_args(argv)
    config = Config(
        flows=a.flows,
        flows_per_engagement=a.flows_per_engagement,
        concurrency=a.concurrency,
        kill_interval=a.kill_interval,
        pg_interval=a.pg_interval,
        pg_first=a.pg_first,
        pg_down=a.pg_down,
        seed=a.seed,
        flow_timeout=a.flow_timeout,
        settle_timeout=a.settle_timeout,
        csv=a.csv,
        log_dir=a.log_dir,
        keep_database=a.keep_database,
        late_cancels=not a.no_late_cancels,
    )
    report = asyncio.run(run(config))
    print(report.text(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
