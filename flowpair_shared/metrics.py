"""Prometheus metrics of a service, served over HTTP on their own port.

RPCs are counted as they finish (the interceptor calls ``rpc_finished``). What lives in the
database (the outbox's backlog, parked messages, phase jobs waiting) is read every
``interval`` seconds by one query per family, in the system scope, the scope the relay and
the phase runner claim in; the pool's use is read from the engine. A scrape never touches the
database, so a busy Prometheus cannot load it.

Every process has its own registry content: run one scrape target per service process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import TextClause

from flowpair_shared import db_scope, tasks

log = logging.getLogger("flowpair.metrics")

RPCS = Counter("flowpair_rpcs", "RPCs finished, by method and status code.", ["method", "code"])
RPC_SECONDS = Histogram(
    "flowpair_rpc_duration_seconds",
    "Time from an RPC's admission to its answer, by method and status code.",
    ["method", "code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
OUTBOX_BACKLOG = Gauge(
    "flowpair_outbox_backlog",
    "This service's outbox messages not yet delivered and not parked, by destination.",
    ["service", "destination"],
)
OUTBOX_OLDEST = Gauge(
    "flowpair_outbox_oldest_undelivered_seconds",
    "Age of this service's oldest undelivered, unparked outbox message, by destination"
    " (0 when there is none).",
    ["service", "destination"],
)
OUTBOX_PARKED = Gauge(
    "flowpair_outbox_parked",
    "This service's outbox messages parked (given up on until re-queued), by destination.",
    ["service", "destination"],
)
POOL = Gauge(
    "flowpair_db_pool_connections",
    "The service process's database pool: connections checked out, idle, and the pool's size.",
    ["service", "state"],
)
REFRESH_FAILURES = Counter(
    "flowpair_metrics_refresh_failures",
    "Refreshes of the database-derived metrics that failed (the database unreachable, say).",
)

# One row per destination this service has sent to; an empty outbox reads as no rows.
_OUTBOX = text(
    """
    SELECT destination,
           count(*) FILTER (WHERE parked_at IS NULL) AS backlog,
           count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked,
           coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE parked_at IS NULL)),
                    0) AS oldest
    FROM messaging.outbox
    WHERE source = :source AND delivered_at IS NULL
    GROUP BY destination
    """
)


@dataclass(frozen=True)
class Family:
    """A gauge fed by a query: each row's first column is the label value, the second the
    gauge's value; each of ``labels`` the query has no row for is set to 0."""

    gauge: Gauge
    query: TextClause
    labels: Sequence[str] = ()
    """Label values always present (0 when the query has no row for them)."""


@dataclass
class Metrics:
    """Background work: the HTTP endpoint and the refresh of the database-derived metrics."""

    source: str
    engine: AsyncEngine
    listen: str
    interval: float = 10.0
    families: Sequence[Family] = ()
    port: int = 0
    """The bound port once started (``listen`` may ask for port 0)."""
    _server: WSGIServer | None = None
    _task: asyncio.Task[None] | None = None
    _destinations: set[str] = field(default_factory=set)

    def bind(self) -> None:
        """Serve the endpoint (before the gRPC ports are bound; see ``server.Binds``)."""
        host, _, port = self.listen.rpartition(":")
        try:
            server, _thread = start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1")
        except (OSError, ValueError) as error:
            # As for the gRPC ports: a second instance must not start half-observable.
            message = f"{self.source}: cannot serve metrics on {self.listen}: {error}"
            raise SystemExit(message) from error
        self._server = server
        self.port = int(server.server_port)
        log.info("metrics listening", extra={"listen": self.listen, "port": self.port})

    def start(self) -> None:
        """Start reading the database-derived series (once the service serves)."""
        self._task = asyncio.create_task(self._run(), name=f"metrics-{self.source}")

    async def stop(self) -> None:
        await tasks.cancelled(self._task)
        self._task = None
        if self._server is not None:
            await asyncio.to_thread(self._server.shutdown)
            self._server.server_close()
            self._server = None

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as error:  # the database away: keep the last values, say so
                REFRESH_FAILURES.inc()
                log.warning("metrics refresh failed: %r", error)
            await asyncio.sleep(self.interval)

    async def refresh(self) -> None:
        self._pool()
        with db_scope.system():
            async with self.engine.connect() as conn:
                rows = (await conn.execute(_OUTBOX, {"source": self.source})).all()
                family_rows = [(f, (await conn.execute(f.query)).all()) for f in self.families]
        seen = {r.destination for r in rows}
        for gone in self._destinations - seen:
            for gauge in (OUTBOX_BACKLOG, OUTBOX_OLDEST, OUTBOX_PARKED):
                gauge.labels(self.source, gone).set(0)
        self._destinations |= seen
        for r in rows:
            OUTBOX_BACKLOG.labels(self.source, r.destination).set(r.backlog)
            OUTBOX_PARKED.labels(self.source, r.destination).set(r.parked)
            OUTBOX_OLDEST.labels(self.source, r.destination).set(float(r.oldest))
        for family, found in family_rows:
            values: dict[str, float] = dict.fromkeys(family.labels, 0.0)
            values.update({str(label): float(value) for label, value in found})
            for label, value in values.items():
                family.gauge.labels(label).set(value)

    def _pool(self) -> None:
        pool: Any = self.engine.pool  # a QueuePool: checkedout(), checkedin(), size()
        POOL.labels(self.source, "checked_out").set(pool.checkedout())
        POOL.labels(self.source, "idle").set(pool.checkedin())
        POOL.labels(self.source, "size").set(pool.size())


def rpc_finished(method: str, code: str, seconds: float) -> None:
    """Count one finished RPC (the interceptor's bookkeeping calls it)."""
    RPCS.labels(method, code).inc()
    RPC_SECONDS.labels(method, code).observe(seconds)
