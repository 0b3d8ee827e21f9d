"""Retention: delivered messages, inbox entries, finished phase jobs and spent sequences are
deleted after the retention time; undelivered and parked messages never are.

One test places each kind of row by hand and runs the sweeps (two replicas at once); one
holds a sequence row in a writer's open transaction; one runs both real services under
continuous load with a one-second retention and samples the tables' sizes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from google.protobuf import wrappers_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from discovery_svc.adapters.job_retention import FINISHED_PHASE_JOBS
from flowpair.v1 import flow_pb2
from flowpair_shared import db_scope
from flowpair_shared.db import app_role_url, asyncpg_dsn, create_engine
from flowpair_shared.outbox import OutgoingMessage, UnitOfWork
from flowpair_shared.outbox.retention import Retention, RetentionSettings
from flowpair_shared.settings import Settings
from tests.support import Stack, eventually, fetch, fetchval, new_tenant
from tests.test_inventory_rerun import run_flow
from tests.test_phase_engine import wait_status

TENANT = new_tenant()
OLD = "now() - interval '1 hour'"
TABLES = (
    "messaging.outbox",
    "messaging.outbox_sequences",
    "messaging.inbox",
    "discovery.phase_jobs",
)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    # As the services connect: the sweeps pass row-level security in the system scope only.
    e = create_engine(app_role_url(database_url), pool_size=6)
    yield e
    await e.dispose()


async def run(url: str, statement: str, *args: object) -> None:
    await fetch(url, statement, *args)


async def add_message(
    url: str,
    *,
    source: str = "orchestrator",
    key: uuid.UUID,
    seq: int,
    delivered: str | None = None,
    parked: str | None = None,
    available: str = "now()",
) -> uuid.UUID:
    """An outbox row as the owner writes it (row-level security does not bind the owner)."""
    message_id = uuid.uuid4()
    await run(
        url,
        f"""
        INSERT INTO messaging.outbox (message_id, source, destination, method, message_type,
          ordering_key, seq, payload, created_at, available_at, delivered_at, parked_at,
          client_account_id, engagement_id)
        VALUES ($1, $2, 'discovery', '/test.Peer/Receive', 'google.protobuf.Int64Value',
          $3, $4, '', {OLD}, {available}, {delivered or "NULL"}, {parked or "NULL"}, $5, $6)
        """,
        message_id,
        source,
        key,
        seq,
        TENANT.client_account_id,
        TENANT.engagement_id,
    )
    await run(
        url,
        """
        INSERT INTO messaging.outbox_sequences
          (source, ordering_key, last_seq, client_account_id, engagement_id)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (source, ordering_key)
          DO UPDATE SET last_seq = greatest(outbox_sequences.last_seq, EXCLUDED.last_seq)
        """,
        source,
        key,
        seq,
        TENANT.client_account_id,
        TENANT.engagement_id,
    )
    return message_id


async def add_inbox(url: str, message_id: uuid.UUID, received: str, consumer: str) -> None:
    await run(
        url,
        f"INSERT INTO messaging.inbox (consumer, message_id, received_at, client_account_id,"
        f" engagement_id) VALUES ($1, $2, {received}, $3, $4)",
        consumer,
        message_id,
        TENANT.client_account_id,
        TENANT.engagement_id,
    )


async def add_job(url: str, child: uuid.UUID, phase: int, state: str, finished: str | None) -> int:
    job: int = await fetchval(
        url,
        f"""
        INSERT INTO discovery.phase_jobs (child_flow_id, phase, state, lease_until, created_at,
          finished_at, client_account_id, engagement_id)
        VALUES ($1, $2, $3, {OLD}, {OLD}, {finished or "NULL"}, $4, $5) RETURNING id
        """,
        child,
        phase,
        state,
        TENANT.client_account_id,
        TENANT.engagement_id,
    )
    return job


async def test_sweeps_delete_only_what_is_spent(database_url: str, engine: AsyncEngine) -> None:
    url = database_url
    spent, mixed, parked, recent, peers = (uuid.uuid4() for _ in range(5))
    # Delivered an hour ago: both go, then the key's sequence.
    gone = [await add_message(url, key=spent, seq=s, delivered=OLD) for s in (1, 2)]
    # Delivered, then one still undelivered (written an hour ago): only the first goes.
    gone.append(await add_message(url, key=mixed, seq=1, delivered=OLD))
    waiting = await add_message(url, key=mixed, seq=2)
    # Parked an hour ago, never delivered: stays, and so does its sequence.
    stuck = await add_message(url, key=parked, seq=1, parked=OLD)
    # Delivered just now: within the retention.
    fresh = await add_message(url, key=recent, seq=1, delivered="now()")
    # The peer's outbox is the peer's to sweep.
    theirs = await add_message(url, source="discovery", key=peers, seq=1, delivered=OLD)
    # A sequence whose rows are long gone (a flow swept before): it goes.
    lone = uuid.uuid4()
    await run(
        url,
        "INSERT INTO messaging.outbox_sequences VALUES ('orchestrator', $1, 7, $2, $3)",
        lone,
        TENANT.client_account_id,
        TENANT.engagement_id,
    )

    # The orchestrator's inbox: entries of messages the discovery service sent it.
    for message_id in (gone[0], uuid.uuid4()):  # delivered / gone from the outbox: they go
        await add_inbox(url, message_id, OLD, "orchestrator")
    for message_id in (waiting, stuck):  # still undelivered: a redelivery may come, they stay
        await add_inbox(url, message_id, OLD, "orchestrator")
    await add_inbox(url, uuid.uuid4(), "now()", "orchestrator")  # within the retention
    await add_inbox(url, uuid.uuid4(), OLD, "discovery")  # the peer's

    child = uuid.uuid4()
    await run(
        url,
        "INSERT INTO discovery.child_flows (id, master_flow_id, client_account_id,"
        " engagement_id, create_user, flow_type, status) VALUES ($1, $1, $2, $3, $1, 1, 2)",
        child,
        TENANT.client_account_id,
        TENANT.engagement_id,
    )
    kept_jobs = [
        await add_job(url, child, 2, "queued", None),
        await add_job(url, child, 3, "running", None),  # its lease expired: still not finished
        await add_job(url, child, 4, "done", "now()"),
    ]
    for phase, state in ((5, "done"), (6, "cancelled"), (7, "done")):
        await add_job(url, child, phase, state, OLD)

    settings = RetentionSettings(retention_seconds=600, interval=60, batch_size=2)
    replicas = [
        Retention(
            engine=engine, name="orchestrator", settings=settings, extra=(FINISHED_PHASE_JOBS,)
        )
        for _ in range(2)
    ]
    # Two replicas at once; a sweep that loses a serialization conflict to the other retries
    # next round, so rounds go on until one deletes nothing.
    deleted = dict.fromkeys(TABLES, 0)
    for _ in range(5):
        rounds = await asyncio.gather(*(r.run_once() for r in replicas))
        if not any(r[t] for r in rounds for t in TABLES):
            break
        for t in TABLES:
            deleted[t] += sum(r[t] for r in rounds)
    assert deleted == {
        "messaging.outbox": 3,
        "messaging.outbox_sequences": 2,
        "messaging.inbox": 2,
        "discovery.phase_jobs": 3,
    }
    # Nothing left to do: another round deletes nothing.
    assert set((await replicas[0].run_once()).values()) == {0}

    remaining = {r[0] for r in await fetch(url, "SELECT message_id FROM messaging.outbox")}
    assert remaining == {waiting, stuck, fresh, theirs}
    assert not remaining & set(gone)
    sequences = await fetch(
        url, "SELECT source, ordering_key, last_seq FROM messaging.outbox_sequences"
    )
    assert {tuple(r) for r in sequences} == {
        ("orchestrator", mixed, 2),
        ("orchestrator", parked, 1),
        ("orchestrator", recent, 1),
        ("discovery", peers, 1),
    }
    inbox = await fetch(
        url, "SELECT consumer, message_id, received_at < now() FROM messaging.inbox"
    )
    assert len(inbox) == 4
    assert {r[1] for r in inbox if r[0] == "orchestrator"} >= {waiting, stuck}
    jobs = await fetch(url, "SELECT id FROM discovery.phase_jobs")
    assert sorted(r[0] for r in jobs) == sorted(kept_jobs)


async def test_a_sequence_a_writer_holds_is_kept(database_url: str, engine: AsyncEngine) -> None:
    """A writer adding the first message of a key whose outbox rows are all swept holds the
    sequence row (locked, not committed): the sweep passes it by, and once the writer commits
    the key has an undelivered row, so its sequence stays and keeps counting."""
    url = database_url
    key = uuid.uuid4()
    await add_message(url, key=key, seq=1, delivered=OLD)
    await add_message(url, key=key, seq=2, delivered=OLD)
    retention = Retention(
        engine=engine, name="orchestrator", settings=RetentionSettings(retention_seconds=600)
    )
    await run(url, "DELETE FROM messaging.outbox WHERE ordering_key = $1", key)  # swept before

    message = OutgoingMessage(
        destination="discovery",
        method="/test.Peer/Receive",
        payload=wrappers_pb2.Int64Value(value=3),
        ordering_key=key,
        headers=TENANT.metadata(),
    )
    with db_scope.tenant(TENANT):
        async with UnitOfWork(engine, source="orchestrator") as uow:
            assert await uow.outbox.add(message) == 3
            swept = await retention.run_once()
            assert swept["messaging.outbox_sequences"] == 0
            await uow.commit()
    assert (await retention.run_once())["messaging.outbox_sequences"] == 0
    assert (
        await fetchval(
            url, "SELECT last_seq FROM messaging.outbox_sequences WHERE ordering_key = $1", key
        )
        == 3
    )
    assert await fetchval(url, "SELECT seq FROM messaging.outbox WHERE ordering_key = $1", key) == 3


# Every row the sweeps delete, as it was: checked after the run.
AUDIT = """
CREATE TABLE public.retention_audit (
  tbl text NOT NULL, message_id uuid, delivered_at timestamptz, parked_at timestamptz,
  state text, finished_at timestamptz, undelivered boolean,
  deleted_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE FUNCTION public.audit_deleted() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, public AS $$
BEGIN
  IF TG_TABLE_NAME = 'outbox' THEN
    INSERT INTO retention_audit (tbl, message_id, delivered_at, parked_at)
      VALUES ('outbox', OLD.message_id, OLD.delivered_at, OLD.parked_at);
  ELSIF TG_TABLE_NAME = 'inbox' THEN
    INSERT INTO retention_audit (tbl, message_id, undelivered) VALUES ('inbox', OLD.message_id,
      EXISTS (SELECT 1 FROM messaging.outbox o
              WHERE o.message_id = OLD.message_id AND o.delivered_at IS NULL));
  ELSIF TG_TABLE_NAME = 'outbox_sequences' THEN
    INSERT INTO retention_audit (tbl, undelivered) VALUES ('sequences',
      EXISTS (SELECT 1 FROM messaging.outbox o
              WHERE o.source = OLD.source AND o.ordering_key = OLD.ordering_key));
  ELSE
    INSERT INTO retention_audit (tbl, state, finished_at)
      VALUES ('jobs', OLD.state, OLD.finished_at);
  END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER audit AFTER DELETE ON messaging.outbox
  FOR EACH ROW EXECUTE FUNCTION public.audit_deleted();
CREATE TRIGGER audit AFTER DELETE ON messaging.inbox
  FOR EACH ROW EXECUTE FUNCTION public.audit_deleted();
CREATE TRIGGER audit AFTER DELETE ON messaging.outbox_sequences
  FOR EACH ROW EXECUTE FUNCTION public.audit_deleted();
CREATE TRIGGER audit AFTER DELETE ON discovery.phase_jobs
  FOR EACH ROW EXECUTE FUNCTION public.audit_deleted();
"""

FAST_RETENTION = RetentionSettings(retention_seconds=1.0, interval=0.2, batch_size=50)
WORKERS = 4
FLOWS_PER_WORKER = 6


@dataclasses.dataclass
class RetainingStack(Stack):
    def settings(self) -> Settings:
        return dataclasses.replace(super().settings(), retention=FAST_RETENTION)


async def sizes(url: str) -> dict[str, int]:
    row = (await fetch(url, "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in TABLES)))[
        0
    ]
    return dict(zip(TABLES, row, strict=True))


async def test_tables_stay_bounded_under_continuous_load(database_url: str) -> None:
    url = database_url
    owner = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await owner.execute(AUDIT)  # one script, several statements
    finally:
        await owner.close()
    # An undelivered message not due for a day and a parked one, both old: they must survive.
    waiting = await add_message(url, key=uuid.uuid4(), seq=1, available="now() + interval '1 day'")
    parked = await add_message(url, key=uuid.uuid4(), seq=1, parked=OLD)

    stack = RetainingStack(url)
    try:
        await stack.start_orchestrator()
        await stack.start_discovery()
        samples: list[tuple[float, dict[str, int]]] = []
        loading = True
        started = time.monotonic()

        async def sample() -> None:
            while loading:
                samples.append((time.monotonic() - started, await sizes(url)))
                await asyncio.sleep(0.25)

        async def worker() -> None:
            for _ in range(FLOWS_PER_WORKER):
                tenant = new_tenant()
                name = await run_flow(stack, tenant)
                await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_COMPLETED, timeout=120)

        sampler = asyncio.create_task(sample())
        await asyncio.gather(*(worker() for _ in range(WORKERS)))
        loading = False
        await sampler

        # Settled: only the two messages that must stay, and their sequences.
        async def settled() -> bool:
            return await sizes(url) == {
                "messaging.outbox": 2,
                "messaging.outbox_sequences": 2,
                "messaging.inbox": 0,
                "discovery.phase_jobs": 0,
            }

        await eventually(settled, timeout=30)
    finally:
        await stack.close()

    flows = WORKERS * FLOWS_PER_WORKER
    assert (
        await fetchval(
            url,
            "SELECT count(*) FROM orchestrator.flows WHERE status = $1",
            flow_pb2.FLOW_STATUS_COMPLETED,
        )
        == flows
    )
    remaining = {r[0] for r in await fetch(url, "SELECT message_id FROM messaging.outbox")}
    assert remaining == {waiting, parked}

    audit = await fetch(url, "SELECT tbl, count(*) FROM public.retention_audit GROUP BY 1")
    written = {r[0]: r[1] for r in audit}
    print(f"\nrows written and deleted by retention over {flows} flows: {written}")
    for t, counts in samples[:: max(1, len(samples) // 20)]:
        print(f"  t={t:6.2f}s {counts}")
    # Every flow's messages, inbox entries, jobs and sequences were deleted...
    assert written["outbox"] >= 10 * flows
    assert written["inbox"] == written["outbox"]
    # One key (the flow) per source, at least: a key idle past the retention between two
    # phases loses its sequence and starts again at 1 with its next message.
    assert written["sequences"] >= 2 * flows
    assert written["jobs"] >= 5 * flows
    # ...and only once spent: delivered at least the retention before, never parked; inbox
    # entries and sequences only with nothing of theirs left undelivered; jobs only finished.
    assert not await fetchval(
        url,
        "SELECT count(*) FROM public.retention_audit WHERE tbl = 'outbox' AND (delivered_at IS"
        " NULL OR parked_at IS NOT NULL OR deleted_at - delivered_at < interval '1 second')",
    )
    assert not await fetchval(url, "SELECT count(*) FROM public.retention_audit WHERE undelivered")
    assert {
        r[0]
        for r in await fetch(
            url, "SELECT DISTINCT state FROM public.retention_audit WHERE tbl = 'jobs'"
        )
    } <= {"done", "cancelled"}
    # Bounded: while flows kept coming, no table ever held more than a fraction of what went
    # through it.
    peak = {t: max(s[t] for _, s in samples) for t in TABLES}
    print(f"peak sizes during load: {peak}")
    assert peak["messaging.outbox"] < written["outbox"] / 2
    assert peak["messaging.inbox"] < written["inbox"] / 2
    assert peak["discovery.phase_jobs"] < written["jobs"] / 2
    assert peak["messaging.outbox_sequences"] < written["sequences"] / 2 + 2


def test_settings_from_the_environment() -> None:
    env = {"DATABASE_URL": "postgresql://x/y"}
    assert Settings.from_env(env).retention == RetentionSettings()
    assert RetentionSettings().retention_seconds == 7 * 24 * 3600
    custom = Settings.from_env(
        {**env, "FLOWPAIR_RETENTION_SECONDS": "3600", "FLOWPAIR_RETENTION_INTERVAL": "5"}
    ).retention
    assert (custom.retention_seconds, custom.interval) == (3600, 5)
    for key, value in (
        ("FLOWPAIR_RETENTION_SECONDS", "0"),
        ("FLOWPAIR_RETENTION_INTERVAL", "-1"),
        ("FLOWPAIR_RETENTION_SECONDS", "soon"),
    ):
        with pytest.raises(SystemExit, match=key):
            Settings.from_env({**env, key: value})
