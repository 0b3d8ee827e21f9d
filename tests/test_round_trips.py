"""Database round trips of the flow-creation hot path, counted on the real database.

Linking a flow takes three use cases in two services (CreateFlow; CreateChildFlow; the
INITIALIZATION event applied) and then the first phase is commanded and reported RUNNING (RunPhase;
its event applied). Each is a handful of statements over a network hop; what bounds flows per
second on a small machine is how many round trips they take, so the count is pinned here.
The count is of asyncpg's protocol calls (tests/roundtrips.py), whatever layer issues them.
"""

from __future__ import annotations

import asyncio

import asyncpg

from flowpair.v1 import orchestrator_pb2
from flowpair_shared.db import asyncpg_dsn
from tests.roundtrips import RoundTrips, counting
from tests.support import Stack, discovery_flow, md, new_tenant, with_relay

INITIALIZATION, DATA_IMPORT = 1, 2
COMPLETED, RUNNING = 3, 2  # phase statuses

LINK_AND_FIRST_PHASE = 64
"""Round trips from CreateFlow until the flow is linked and its first phase RUNNING, relays
included, each message delivered alone, on fresh connections (so statement preparations count).
Measured: 62; 47 before locked reads became lock-then-read (``tests/test_locked_reads.py``: a
statement more per locked read, and its preparation); before issue 9 item 3: 119 to 123."""


async def _settled(conn: asyncpg.Connection, flow_id: str, counter: RoundTrips) -> None:
    """Wait until the flow is linked, DATA_IMPORT is RUNNING, both outboxes are delivered,
    and no round trip happened for a while (the relays' last empty claims are in)."""
    last = -1
    for _ in range(400):
        done = await conn.fetchval(
            """
            SELECT f.child_flow_id IS NOT NULL
               AND EXISTS (SELECT 1 FROM orchestrator.flow_events e WHERE e.flow_id = f.id
                           AND e.phase = $2 AND e.phase_status = $3)
               AND NOT EXISTS (SELECT 1 FROM messaging.outbox o WHERE o.delivered_at IS NULL)
            FROM orchestrator.flows f WHERE f.id = $1::uuid
            """,
            flow_id,
            DATA_IMPORT,
            RUNNING,
        )
        if done and counter.total == last:
            return
        last = counter.total if done else -1
        await asyncio.sleep(0.3)
    raise AssertionError(f"the flow did not settle; {dict(counter.by_method)}")


async def _link_one(stack: Stack, import_id: object, counter: RoundTrips) -> int:
    tenant = new_tenant()
    conn = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    counter.ignore(conn)
    try:
        before = counter.total
        flow = discovery_flow(import_id=import_id)  # type: ignore[arg-type]
        created = await stack.orchestrator().CreateFlow(
            orchestrator_pb2.CreateFlowRequest(flow=flow), metadata=md(tenant)
        )
        await _settled(conn, created.flow.name.split("/")[1], counter)
        return counter.total - before
    finally:
        await conn.close()


async def test_linking_a_flow_and_starting_its_first_phase_takes_few_round_trips(
    stack: Stack,
) -> None:
    # No idle polls in the count: the relays wake on commit (LISTEN/NOTIFY and the kick).
    with_relay(stack, poll_interval=600.0)
    with counting() as counter:
        await stack.start_orchestrator()
        await stack.start_discovery()
        # The phase runner is held: what is counted ends when DATA_IMPORT is reported RUNNING.
        await stack.runner().stop()
        import_id = None
        # A warm-up flow: the statements are prepared once per connection, not per flow.
        for _ in range(3):
            await _link_one(stack, import_id, counter)
        counter.by_statement.clear()
        counts = [await _link_one(stack, import_id, counter) for _ in range(3)]
    # The least of three: a flow may meet a pooled connection that has not prepared a
    # statement yet (one more round trip), or an extra relay wake-up.
    assert min(counts) <= LINK_AND_FIRST_PHASE, (counts, sorted(counter.by_statement.items()))
