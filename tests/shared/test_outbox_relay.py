"""The shared outbox, relay and inbox against a real PostgreSQL and a real gRPC peer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf import wrappers_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from flowpair.internal.v1 import message_batch_service_pb2 as batch_pb2
from flowpair_shared import db_scope
from flowpair_shared.db import app_role_url, asyncpg_dsn, create_engine
from flowpair_shared.notify import Listener
from flowpair_shared.outbox import OutgoingMessage, Relay, RelaySettings, UnitOfWork
from flowpair_shared.outbox.batch import BATCH_METHOD
from flowpair_shared.outbox.store import list_parked, requeue
from flowpair_shared.tls import PEER_CHANNEL_OPTIONS
from tests.support import eventually, fetchval, free_port, new_tenant

METHOD = "/test.Peer/Receive"
TENANT = new_tenant()


@dataclass
class Peer:
    """A real gRPC server accepting any method; ``decide`` picks each call's status."""

    decide: Callable[[str], grpc.StatusCode] = lambda _key: grpc.StatusCode.OK
    hold: Callable[[str], float] = lambda _key: 0.0
    """Seconds each call of a key takes: a slow peer."""
    received: list[tuple[str, int, str]] = field(default_factory=list)  # (key, value, message id)
    batching: bool = False
    """Whether it serves DeliverMessages (else, like an older peer, single calls only)."""
    batches: list[int] = field(default_factory=list)  # the size of each batch received
    server: grpc.aio.Server | None = None
    port: int = 0

    async def start(self, address: str = "127.0.0.1:0") -> None:
        peer = self

        async def receive(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            md = dict(context.invocation_metadata() or ())
            key = str(md["x-key"])
            await asyncio.sleep(peer.hold(key))
            code = peer.decide(key)
            if code != grpc.StatusCode.OK:
                await context.abort(code, f"peer says {code.name}")
            value = wrappers_pb2.Int64Value.FromString(request).value
            peer.received.append((key, value, str(md["x-message-id"])))
            return b""

        async def deliver(request: bytes, _context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            batch = batch_pb2.DeliverMessagesRequest.FromString(request)
            peer.batches.append(len(batch.messages))
            results = []
            for m in batch.messages:
                key = m.headers["x-key"]
                await asyncio.sleep(peer.hold(key))
                code = peer.decide(key)
                if code == grpc.StatusCode.OK:
                    value = wrappers_pb2.Int64Value.FromString(m.payload).value
                    peer.received.append((key, value, m.message_id))
                results.append(
                    batch_pb2.DeliveryResult(
                        message_id=m.message_id, code=code.value[0], message="peer says so"
                    )
                )
            return batch_pb2.DeliverMessagesResponse(results=results).SerializeToString()

        class Handler(grpc.GenericRpcHandler):
            def service(
                self, details: grpc.HandlerCallDetails
            ) -> grpc.RpcMethodHandler[Any, Any] | None:
                if details.method == BATCH_METHOD:
                    if not peer.batching:
                        return None  # an older peer: the relay falls back to single calls
                    return grpc.unary_unary_rpc_method_handler(deliver)
                return grpc.unary_unary_rpc_method_handler(receive)

        self.server = grpc.aio.server()
        self.server.add_generic_rpc_handlers((Handler(),))
        self.port = self.server.add_insecure_port(address)
        await self.server.start()

    async def stop(self) -> None:
        assert self.server is not None
        await self.server.stop(0)

    def values(self, key: str) -> list[int]:
        return [v for k, v, _ in self.received if k == key]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    # As the services connect: row-level security binds the relay to the system scope.
    e = create_engine(app_role_url(database_url), pool_size=5)
    yield e
    await e.dispose()


@pytest.fixture(params=[False, True], ids=["single-calls", "batched"])
async def peer(request: pytest.FixtureRequest) -> AsyncIterator[Peer]:
    """Every relay test runs against a peer taking single calls and one taking batches."""
    p = Peer(batching=request.param)
    await p.start()
    yield p
    await p.stop()


SETTINGS = RelaySettings(
    poll_interval=0.3,
    backoff_base=0.02,
    backoff_max=0.05,
    transient_backoff_max=0.05,
    max_rejections=3,
    delivery_timeout=2,
    lease_seconds=3,
)


class Relays:
    def __init__(self, engine: AsyncEngine, database_url: str) -> None:
        self.engine, self.dsn = engine, asyncpg_dsn(database_url)
        self.running: list[tuple[Relay, grpc.aio.Channel, Listener | None]] = []

    def start(self, port: int, settings: RelaySettings = SETTINGS, listen: bool = True) -> Relay:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=PEER_CHANNEL_OPTIONS)
        listener = Listener(self.dsn) if listen else None
        relay = Relay(
            engine=self.engine,
            listener=listener,
            source="test",
            channels={"peer": channel},
            settings=settings,
        )
        if listener is not None:
            listener.start()
        relay.start()
        self.running.append((relay, channel, listener))
        return relay

    async def stop(self) -> None:
        for relay, channel, listener in self.running:
            await relay.stop()
            await channel.close()
            if listener is not None:
                await listener.stop()


@pytest.fixture
async def relays(engine: AsyncEngine, database_url: str) -> AsyncIterator[Relays]:
    r = Relays(engine, database_url)
    yield r
    await r.stop()


async def write(engine: AsyncEngine, key: str, value: int, *, commit: bool = True) -> None:
    # As a service writes: in an RPC's (here: a fixed) tenant, which the outbox row takes.
    with db_scope.tenant(TENANT):
        await _write(engine, key, value, commit=commit)


async def _write(engine: AsyncEngine, key: str, value: int, *, commit: bool) -> None:
    async with UnitOfWork(engine, source="test") as uow:
        await uow.outbox.add(
            OutgoingMessage(
                destination="peer",
                method=METHOD,
                payload=wrappers_pb2.Int64Value(value=value),
                ordering_key=uuid.uuid5(uuid.NAMESPACE_OID, key),
                headers={"x-key": key},
            )
        )
        if commit:
            await uow.commit()


async def test_rolled_back_transaction_leaves_no_message(
    engine: AsyncEngine, database_url: str
) -> None:
    await write(engine, "a", 1, commit=False)
    assert await fetchval(database_url, "SELECT count(*) FROM messaging.outbox") == 0
    await write(engine, "a", 2)
    assert await fetchval(database_url, "SELECT seq FROM messaging.outbox") == 1


async def test_per_key_commit_order_under_concurrent_writers_and_two_relays(
    engine: AsyncEngine, peer: Peer, relays: Relays
) -> None:
    relays.start(peer.port)
    relays.start(peer.port)  # a replica: claims are shared with SKIP LOCKED
    keys = [f"k{i}" for i in range(8)]

    async def writer(key: str) -> None:
        for value in range(25):
            await write(engine, key, value)

    await asyncio.gather(*(writer(k) for k in keys))
    await eventually(lambda: _count(peer, 8 * 25))
    for key in keys:
        assert peer.values(key) == list(range(25)), key


async def _count(peer: Peer, n: int) -> bool:
    return len(peer.received) >= n


async def test_notification_wakes_the_relay_before_the_poll(
    engine: AsyncEngine, peer: Peer, relays: Relays
) -> None:
    relays.start(peer.port, RelaySettings(poll_interval=60))
    await asyncio.sleep(0.3)  # the listener connects
    await write(engine, "n", 1)
    # Without LISTEN/NOTIFY this would wait for the 60 s poll and time out.
    await eventually(lambda: _count(peer, 1), timeout=10)


async def test_rejected_message_is_parked_holds_its_key_only_and_can_be_requeued(
    engine: AsyncEngine, peer: Peer, relays: Relays, database_url: str
) -> None:
    poisoned = {"bad"}
    peer.decide = lambda key: (
        grpc.StatusCode.FAILED_PRECONDITION if key in poisoned else grpc.StatusCode.OK
    )
    relays.start(peer.port)
    await write(engine, "bad", 1)
    await write(engine, "bad", 2)
    await write(engine, "good", 1)

    async def parked() -> bool:
        with db_scope.system():  # as the operator's command does
            async with engine.connect() as conn:
                return len(await list_parked(conn, source="test")) == 1

    await eventually(parked)
    await eventually(lambda: _count(peer, 1))
    await asyncio.sleep(0.3)
    assert peer.values("good") == [1]
    assert peer.values("bad") == []  # message 2 waits behind the parked message 1
    with db_scope.system():
        async with engine.connect() as conn:
            [msg] = await list_parked(conn, source="test")
    assert msg.seq == 1 and msg.attempts == SETTINGS.max_rejections
    assert "FAILED_PRECONDITION" in (msg.last_error or "")

    poisoned.clear()
    with db_scope.system():
        async with engine.begin() as conn:
            assert await requeue(conn, msg.message_id)
    await eventually(lambda: _count(peer, 3))
    assert peer.values("bad") == [1, 2]

    async def all_recorded() -> bool:
        # The relay records an outcome after the peer answered, in a transaction of its own.
        undelivered = await fetchval(
            database_url, "SELECT count(*) FROM messaging.outbox WHERE delivered_at IS NULL"
        )
        return bool(undelivered == 0)

    await eventually(all_recorded)


async def test_invalid_argument_parks_at_once(
    engine: AsyncEngine, peer: Peer, relays: Relays, database_url: str
) -> None:
    peer.decide = lambda _key: grpc.StatusCode.INVALID_ARGUMENT
    relays.start(peer.port)
    await write(engine, "x", 1)

    async def attempts_when_parked() -> int | None:
        v = await fetchval(
            database_url, "SELECT attempts FROM messaging.outbox WHERE parked_at IS NOT NULL"
        )
        return int(v) if v is not None else None

    assert await eventually(attempts_when_parked) == 1


async def test_unreachable_peer_never_parks_and_delivery_resumes(
    engine: AsyncEngine, relays: Relays, database_url: str
) -> None:
    peer = Peer()
    port = free_port()
    relays.start(port)
    for value in range(3):
        await write(engine, "later", value)

    async def tried_a_lot() -> bool:
        attempts = await fetchval(database_url, "SELECT max(attempts) FROM messaging.outbox")
        return bool(attempts and attempts > SETTINGS.max_rejections)

    await eventually(tried_a_lot)
    assert (
        await fetchval(
            database_url, "SELECT count(*) FROM messaging.outbox WHERE parked_at IS NOT NULL"
        )
        == 0
    )
    await peer.start(f"127.0.0.1:{port}")
    try:
        await eventually(lambda: _count(peer, 3))
        assert peer.values("later") == [0, 1, 2]
    finally:
        await peer.stop()


# --- claims as leases -------------------------------------------------------------------------

LEASED = RelaySettings(
    poll_interval=0.3,
    backoff_base=0.02,
    backoff_max=0.05,
    transient_backoff_max=0.05,
    delivery_timeout=2.0,
    lease_seconds=2.5,
)


def _relay(engine: AsyncEngine, port: int, settings: RelaySettings = LEASED) -> Relay:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=PEER_CHANNEL_OPTIONS)
    return Relay(
        engine=engine, listener=None, source="test", channels={"peer": channel}, settings=settings
    )


async def test_a_claim_commits_at_once_and_a_crashed_relays_lease_runs_out(
    engine: AsyncEngine, peer: Peer, database_url: str
) -> None:
    """The claim holds no transaction open: its rows carry a lease another relay respects
    until it expires, then takes over (the first relay 'crashed' before delivering)."""
    await write(engine, "c", 1)
    crashed = _relay(engine, peer.port)
    claimed = await crashed._claim()  # claims, then never delivers nor records
    assert [m.seq for m in claimed] == [1]
    assert (
        await fetchval(
            database_url,
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
        )
        == 0
    )
    other = _relay(engine, peer.port)
    assert await other.deliver_once() == 0  # leased: not claimable
    await asyncio.sleep(LEASED.lease_seconds + 0.2)
    assert await other.deliver_once() == 1
    assert peer.values("c") == [1]
    assert (
        await fetchval(database_url, "SELECT lease_token FROM messaging.outbox WHERE seq = 1") == 2
    )


async def test_a_relay_that_lost_its_lease_records_nothing(
    engine: AsyncEngine, peer: Peer, database_url: str
) -> None:
    """Fencing: the stale holder's outcome (here a rejection) must not undo the delivery
    recorded by the relay that took the message over."""
    await write(engine, "f", 1)
    stale = _relay(engine, peer.port)
    claimed = await stale._claim()
    await asyncio.sleep(LEASED.lease_seconds + 0.2)
    assert await _relay(engine, peer.port).deliver_once() == 1
    peer.decide = lambda _key: grpc.StatusCode.FAILED_PRECONDITION
    outcomes = await asyncio.gather(*(stale._send(m) for m in claimed))
    assert outcomes[0].code == grpc.StatusCode.FAILED_PRECONDITION
    await stale._deliver_and_record(claimed)
    row = await fetchval(
        database_url,
        "SELECT (delivered_at IS NOT NULL, attempts, rejections, lease_owner IS NULL)::text"
        " FROM messaging.outbox WHERE seq = 1",
    )
    assert row == "(t,1,0,t)"


async def test_rounds_overlap_so_a_slow_peer_call_stalls_only_its_own_flow(
    engine: AsyncEngine, peer: Peer, relays: Relays
) -> None:
    peer.hold = lambda key: 3.0 if key == "slow" else 0.0
    settings = RelaySettings(poll_interval=0.3, batch_size=1, delivery_timeout=5, lease_seconds=6)
    relays.start(peer.port, settings)
    await write(engine, "slow", 1)
    await asyncio.sleep(0.3)  # claimed and in flight
    for i in range(3):
        await write(engine, f"fast{i}", 1)
    # Claimed in later rounds while the slow call is still in flight.
    await eventually(lambda: _count(peer, 3), timeout=2.5)
    assert peer.values("slow") == []
    await eventually(lambda: _count(peer, 4), timeout=10)


async def test_a_batching_peer_gets_a_rounds_messages_in_one_call(
    engine: AsyncEngine, relays: Relays
) -> None:
    peer = Peer(batching=True)
    await peer.start()
    try:
        for i in range(10):
            await write(engine, f"b{i}", 1)
        relays.start(peer.port)
        await eventually(lambda: _count(peer, 10))
        assert max(peer.batches) > 1, peer.batches
    finally:
        await peer.stop()
