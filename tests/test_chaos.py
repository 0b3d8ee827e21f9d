"""A small `make chaos` inside `make test`: 2+2 replicas, a few SIGKILLs and one PostgreSQL
restart while flows run through every phase; every invariant holds afterwards."""

from __future__ import annotations

from pathlib import Path

from tests.chaos.run import Config, run


async def test_small_chaos_run_keeps_every_invariant(tmp_path: Path) -> None:
    report = await run(
        Config(
            flows=24,
            flows_per_engagement=3,
            concurrency=12,
            kill_interval=2.5,
            pg_first=4.0,
            pg_interval=1000.0,
            pg_down=1.0,
            max_pg_restarts=1,
            seed=5,
            flow_timeout=90.0,
            settle_timeout=60.0,
            log_dir=tmp_path,
            server_dir="pg-chaos-test",  # apart from a `make chaos` running meanwhile
        )
    )
    print(report.text())
    assert report.ok, report.text()
