"""Fuzzing every public RPC with generated requests (see tests/fuzzing).

One stack (both services in this process, real channels, one database) for the module,
seeded with real uploads and flows; then ``FLOWPAIR_FUZZ_REQUESTS`` (default 10,000) cases
are sent 48 at a time in batches of 250. Every answer must be a well-formed status other
than INTERNAL, UNKNOWN or DATA_LOSS whose details show no internals; every INVALID_ARGUMENT
names its field (google.rpc.BadRequest); requests that must be refused (bad tenant metadata,
forged page tokens, control characters in a display name) are; a batch in which every
writing RPC was refused changes no row; and both servers still serve at the end.

    FLOWPAIR_FUZZ_REQUESTS=100000 FLOWPAIR_FUZZ_SEED=42 .venv/bin/pytest -s tests/test_fuzz.py

The seed, counts per method and code, and every failure class are printed (``-s``); every
failing request is written, replayable, to ``.data/fuzz/failures-<seed>.jsonl``.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from flowpair.v1 import orchestrator_pb2
from flowpair_shared import devstack
from flowpair_shared.db import asyncpg_dsn
from tests.fuzzing.campaign import Report, Seeded, run, seed
from tests.fuzzing.rows import Rows
from tests.fuzzing.surface import public_methods
from tests.support import Stack, md

REQUESTS = int(os.environ.get("FLOWPAIR_FUZZ_REQUESTS", "10000"))
SEED = int(os.environ.get("FLOWPAIR_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
# The campaign runs in the first test's setup: allow for slow machines and bigger runs.
pytestmark = pytest.mark.timeout(max(240, 90 + REQUESTS // 50))


@pytest.fixture(scope="module")
async def fuzz_database(admin_url: str, template_db: str) -> AsyncIterator[str]:
    name = f"flowpair_fuzz_{os.getpid()}"
    await devstack.drop_database(admin_url, name)
    url = await devstack.ensure_database(admin_url, name, template=template_db)
    yield url
    await devstack.drop_database(admin_url, name)


@pytest.fixture(scope="module")
async def fuzz_stack(fuzz_database: str) -> AsyncIterator[tuple[Stack, Seeded]]:
    stack = Stack(fuzz_database)
    await stack.start_orchestrator()
    await stack.start_discovery()
    try:
        yield stack, await seed(stack)
    finally:
        await stack.close()


@pytest.fixture(scope="module")
async def campaign(fuzz_stack: tuple[Stack, Seeded], fuzz_database: str) -> Report:
    stack, seeded = fuzz_stack
    conn = await asyncpg.connect(asyncpg_dsn(fuzz_database))
    try:
        rows = Rows(conn)
        await rows.load()
        # The snapshots must see what the services write (a row-level security policy, say,
        # could hide it), or comparing them would prove nothing.
        before = await rows.snapshot()
        await stack.upload(seeded.other, b"host,ip\nfuzz-self-check,10.9.9.9\n")
        assert await rows.snapshot() != before, "snapshots do not see the services' writes"
        report = await run(stack, seeded, rows, seed=SEED, total=REQUESTS)
    finally:
        await conn.close()
    print(f"\n{report.render()}")
    return report


def _fail_with(report: Report, rule: str) -> None:
    if report.classes(rule):
        pytest.fail(
            f"{rule}: {sum(len(v) for v in report.classes(rule).values())} failures in"
            f" {len(report.classes(rule))} classes (seed {report.seed})\n" + report.describe(rule),
            pytrace=False,
        )


async def test_every_public_method_is_fuzzed(campaign: Report) -> None:
    methods = public_methods()
    assert {m.short for m in campaign.methods} == {m.short for m in methods}
    assert campaign.sent >= REQUESTS
    least = REQUESTS // (2 * len(methods))
    starved = {m.short: campaign.count(m) for m in methods if campaign.count(m) < least}
    assert not starved, f"fewer than {least} requests: {starved}"
    kinds = ("scratch", "mutant", "valid", "probe", "raw", "metadata")
    assert all(campaign.kinds[k] > 0 for k in kinds), campaign.kinds


async def test_no_internal_unknown_or_data_loss(campaign: Report) -> None:
    _fail_with(campaign, "no INTERNAL/UNKNOWN/DATA_LOSS")


async def test_servers_answer_every_request(campaign: Report) -> None:
    _fail_with(campaign, "servers answer")


async def test_statuses_are_well_formed(campaign: Report) -> None:
    _fail_with(campaign, "well-formed status")


async def test_errors_show_no_internals(campaign: Report) -> None:
    _fail_with(campaign, "no internals in errors")


async def test_phases_do_not_crash(campaign: Report) -> None:
    _fail_with(campaign, "phases do not crash")


async def test_invalid_argument_names_the_field(campaign: Report) -> None:
    _fail_with(campaign, "INVALID_ARGUMENT names the field")


async def test_bad_input_is_refused(campaign: Report) -> None:
    _fail_with(campaign, "bad input is refused")


async def test_refused_requests_change_no_row(campaign: Report) -> None:
    assert not campaign.row_failures, "\n".join(campaign.row_failures)
    # The comparison must have covered a good share of the refusals to mean anything.
    assert campaign.refused_row_checked >= campaign.refused // 4, campaign.render()


async def test_servers_still_serve(campaign: Report, fuzz_stack: tuple[Stack, Seeded]) -> None:
    stack, seeded = fuzz_stack
    for port in (stack.orchestrator_port, stack.discovery_port):
        health: Any = health_pb2_grpc.HealthStub(stack.channel(port))
        reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    got = await stack.orchestrator().GetFlow(
        orchestrator_pb2.GetFlowRequest(name=seeded.completed),
        metadata=md(seeded.tenant),
        timeout=5,
    )
    assert got.flow.name == seeded.completed
    assert stack.apps and all(isinstance(app.port, int) and app.port for app in stack.apps)
