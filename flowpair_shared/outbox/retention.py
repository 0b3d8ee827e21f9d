"""Retention: what the message path leaves behind is deleted once it can no longer matter.

Every ``interval`` seconds each service deletes, in batches of ``batch_size`` rows (one short
transaction per batch, in ``db_scope.system()``):

- its **delivered outbox rows** delivered more than ``retention_seconds`` ago. Undelivered
  rows (waiting, retrying or parked) are never deleted, however old;
- its **outbox sequences** (``source``, ``ordering_key`` → ``last_seq``) whose key has no
  outbox row left: the key's last message was delivered more than ``retention_seconds`` ago
  and retention deleted it, so no timestamp of its own is needed (see ``_SEQUENCES``);
- its **inbox rows** (``consumer``) received more than ``retention_seconds`` ago, and never
  while the message's outbox row is still undelivered;
- ``extra`` sweeps a service adds (the discovery service: finished phase jobs).

**The invariant.** The inbox makes a redelivery a no-op only while it remembers the message,
so an inbox row must outlive every possible redelivery of its message. The relay redelivers a
message only while its outbox row is undelivered (a peer that applied it but whose answer was
lost, a parked message re-queued later). Where both services share one database (every
deployment of this repository), the inbox sweep checks that directly: it skips a row whose
message is still undelivered in ``messaging.outbox``. Where they would not, the only guard is
time: ``retention_seconds`` must exceed the longest delivery retry horizon — the longest a
message may stay undelivered after its consumer applied it (a peer outage, a parked message
waiting for an operator). The default, 7 days, covers a week-end's outage and an operator's
re-queue with a wide margin, and keeps a week of delivered messages and finished jobs to
investigate; at about 46 rows per flow it bounds the tables to a week of traffic.

**Replicas.** Each batch first takes a transaction-scoped advisory lock on its sweep (table
and service) with ``pg_try_advisory_xact_lock``: while one replica sweeps a table, another
skips it for that round instead of scanning the same rows; rows are also taken with ``SKIP
LOCKED`` where the sweep locks them, so a sweep never waits behind the relay or the runner.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from flowpair_shared import db_scope
from flowpair_shared.dbfailures import Failure, classify
from flowpair_shared.periodic import Periodic

log = logging.getLogger("flowpair.retention")

DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600.0

# The first key of the two-int advisory locks of retention (a key space of its own: the
# engagement locks take one bigint key).
_LOCK_SPACE = 0x7E7E
_LOCK = text("SELECT pg_try_advisory_xact_lock(:space, hashtext(:sweep))")

_CUTOFF = "now() - make_interval(secs => :retention)"

_OUTBOX = text(
    f"""
    DELETE FROM messaging.outbox WHERE id = ANY(ARRAY(
      SELECT id FROM messaging.outbox
      WHERE source = :name AND delivered_at < {_CUTOFF} AND parked_at IS NULL
      LIMIT :limit FOR UPDATE SKIP LOCKED))
    """
)

# A sequence row may go only when its key has no outbox row at all: the relay orders a key's
# undelivered messages by ``seq``, so restarting a key at 1 is safe exactly when nothing of
# that key is left to order against. The hazard is a writer adding a message for the key
# meanwhile: ``OutboxWriter.add`` upserts (and so locks) the sequence row before inserting its
# outbox row, and commits both together. In READ COMMITTED one statement would not do: a
# row updated by a writer that commits while this statement runs is re-checked against its
# new version, but NOT EXISTS keeps the statement's older snapshot, which does not see the
# writer's new outbox row. So the statement runs in REPEATABLE READ, where every row it
# deletes is unchanged since its snapshot:
# - a writer still running holds the row lock: SKIP LOCKED passes the row by;
# - a writer committed before the snapshot: its outbox row is seen, NOT EXISTS is false;
# - a writer committed after the snapshot changed the row: locking it fails with a
#   serialization error, the batch rolls back and the next round tries again;
# - a writer arriving after the row is locked waits for this transaction, then finds the row
#   gone and starts the key afresh at 1, with no row of the key left to collide with.
_SEQUENCES = text(
    """
    DELETE FROM messaging.outbox_sequences WHERE (source, ordering_key) IN (
      SELECT s.source, s.ordering_key FROM messaging.outbox_sequences s
      WHERE s.source = :name
        AND NOT EXISTS (SELECT 1 FROM messaging.outbox o
                        WHERE o.source = s.source AND o.ordering_key = s.ordering_key)
      LIMIT :limit FOR UPDATE SKIP LOCKED)
    """
)

# Inbox rows are only ever inserted and deleted (never updated), so their ctid is stable
# within the statement, and a row two replicas both pick is deleted once.
_INBOX = text(
    f"""
    DELETE FROM messaging.inbox WHERE ctid = ANY(ARRAY(
      SELECT i.ctid FROM messaging.inbox i
      WHERE i.consumer = :name AND i.received_at < {_CUTOFF}
        AND NOT EXISTS (SELECT 1 FROM messaging.outbox o
                        WHERE o.message_id = i.message_id AND o.delivered_at IS NULL)
      LIMIT :limit))
    """
)


@dataclass(frozen=True)
class Sweep:
    """One batched DELETE: ``statement`` takes ``:name`` (the service), ``:retention``
    (seconds) and ``:limit`` (rows) and deletes at most ``:limit`` rows."""

    table: str
    statement: TextClause
    isolation_level: str = "READ COMMITTED"


SHARED_SWEEPS = (
    Sweep("messaging.outbox", _OUTBOX),
    Sweep("messaging.outbox_sequences", _SEQUENCES, "REPEATABLE READ"),
    Sweep("messaging.inbox", _INBOX),
)


@dataclass(frozen=True, kw_only=True)
class RetentionSettings:
    retention_seconds: float = DEFAULT_RETENTION_SECONDS
    """Age after which delivered messages, inbox entries and finished jobs are deleted."""
    interval: float = 60.0
    """Seconds between rounds."""
    batch_size: int = 1000
    """Rows per DELETE statement (and per transaction)."""


class Retention(Periodic):
    """Background work of a service: deletes what its message path no longer needs."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        name: str,
        settings: RetentionSettings = RetentionSettings(),
        extra: Sequence[Sweep] = (),
    ) -> None:
        super().__init__(name=f"retention-{name}", interval=settings.interval, log=log)
        self._engine = engine
        self._service = name
        self._settings = settings
        self._sweeps = (*SHARED_SWEEPS, *extra)

    async def run_once(self) -> dict[str, int]:
        """One round: every sweep until it finds less than a batch; rows deleted per table."""
        deleted: dict[str, int] = {}
        for sweep in self._sweeps:
            total = batches = 0
            while not self.stopping:
                try:
                    n = await self._batch(sweep)
                except Exception as error:
                    if classify(error) is not Failure.CONFLICT:
                        raise
                    # A writer changed a row meanwhile (see _SEQUENCES): next round.
                    log.debug("retention batch conflicted", extra={"table": sweep.table})
                    break
                if n is None:  # another replica is sweeping this table
                    break
                total += n
                batches += 1
                if n < self._settings.batch_size:
                    break
            deleted[sweep.table] = total
            if total:
                log.info(
                    "retention deleted rows",
                    extra={
                        "service": self._service,
                        "table": sweep.table,
                        "deleted": total,
                        "batches": batches,
                        "retention_seconds": self._settings.retention_seconds,
                    },
                )
        return deleted

    async def _batch(self, sweep: Sweep) -> int | None:
        """Delete one batch; None when another replica holds the sweep's lock."""
        with db_scope.system():
            async with self._engine.connect() as conn:
                await conn.execution_options(isolation_level=sweep.isolation_level)
                async with conn.begin():
                    locked = await conn.execute(
                        _LOCK, {"space": _LOCK_SPACE, "sweep": f"{sweep.table}:{self._service}"}
                    )
                    if not locked.scalar_one():
                        return None
                    result = await conn.execute(
                        sweep.statement,
                        {
                            "name": self._service,
                            "retention": self._settings.retention_seconds,
                            "limit": self._settings.batch_size,
                        },
                    )
                    return int(result.rowcount)
