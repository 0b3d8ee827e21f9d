"""The relay: delivers committed outbox messages to peers over gRPC.

Guarantees:
- at-least-once delivery (consumers make redelivery a no-op with the inbox);
- per ordering key, one message in flight at a time, in commit (``seq``) order; a retrying or
  parked message holds back only its own key;
- several relays (replicas) share the work through leases. A short transaction claims a batch
  (``FOR UPDATE SKIP LOCKED``, then owner, expiry and a fencing token on each row) and commits;
  delivery happens outside any transaction; a second short transaction records the outcomes,
  only for rows whose owner and token are still this relay's. A crashed relay's rows become
  claimable when their lease expires; a relay that outlived its lease (and lost the row to
  another) records nothing. Rounds overlap, up to ``max_in_flight_batches``, so one slow peer
  no longer stalls every other delivery;
- wakes on commit (LISTEN/NOTIFY), with a slow poll as the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowpair.internal.v1 import message_batch_service_pb2 as batch_pb2
from flowpair_shared import db_scope, logs, tracing
from flowpair_shared.dbfailures import is_unavailable
from flowpair_shared.notify import Listener
from flowpair_shared.outbox.batch import BATCH_METHOD, MAX_MESSAGES, STATUS_CODES
from flowpair_shared.outbox.inbox import MESSAGE_ID_HEADER
from flowpair_shared.outbox.store import NOTIFY_CHANNEL

log = logging.getLogger("flowpair.relay")

# A row is claimable when it is not leased (or its lease ran out) and it is the first
# undelivered message of its key (an earlier leased one, or a parked one, blocks the key until
# delivered). The first is asked as a correlated scalar subquery, not NOT EXISTS: the planner
# may turn NOT EXISTS into an anti-join whose inner side scans every undelivered row of the
# source (with the dead index entries of recent deliveries) for each candidate; a subquery is
# always one index probe by (source, ordering_key). Claiming takes a new fencing token.
_CLAIM = text(
    """
    WITH claimable AS (
      SELECT o.id FROM messaging.outbox o
      WHERE o.source = :source AND o.delivered_at IS NULL AND o.parked_at IS NULL
        AND o.available_at <= now()
        AND (o.lease_until IS NULL OR o.lease_until < now())
        AND o.seq = (
          SELECT min(p.seq) FROM messaging.outbox p
          WHERE p.source = o.source AND p.ordering_key = o.ordering_key
            AND p.delivered_at IS NULL)
      ORDER BY o.id
      LIMIT :limit
      FOR UPDATE OF o SKIP LOCKED
    )
    UPDATE messaging.outbox o
    SET lease_owner = :owner, lease_until = now() + make_interval(secs => :lease),
        lease_token = o.lease_token + 1
    FROM claimable c WHERE o.id = c.id
    RETURNING o.id, o.message_id, o.destination, o.method, o.ordering_key, o.seq, o.payload,
              o.headers, o.attempts, o.rejections, o.lease_token
    """
)

# Outcomes count only where this relay still holds the lease it claimed (owner and token):
# a relay that stalled past its lease, while another took the row over, records nothing.
_DELIVERED = text(
    """
    UPDATE messaging.outbox o
    SET delivered_at = now(), attempts = o.attempts + 1, last_error = NULL,
        lease_owner = NULL, lease_until = NULL
    FROM unnest(CAST(:ids AS bigint[]), CAST(:tokens AS bigint[])) AS t(id, token)
    WHERE o.id = t.id AND o.lease_owner = :owner AND o.lease_token = t.token
    RETURNING EXISTS (
      SELECT 1 FROM messaging.outbox p
      WHERE p.source = o.source AND p.ordering_key = o.ordering_key
        AND p.delivered_at IS NULL AND p.seq > o.seq)
    """
)

_FAILED = text(
    """
    UPDATE messaging.outbox o
    SET attempts = o.attempts + 1, rejections = t.rejections, last_error = t.error,
        available_at = now() + make_interval(secs => t.delay),
        parked_at = CASE WHEN t.park THEN now() END,
        lease_owner = NULL, lease_until = NULL
    FROM unnest(CAST(:ids AS bigint[]), CAST(:tokens AS bigint[]), CAST(:rejections AS int[]),
                CAST(:errors AS text[]), CAST(:delays AS float8[]), CAST(:parks AS boolean[]))
         AS t(id, token, rejections, error, delay, park)
    WHERE o.id = t.id AND o.lease_owner = :owner AND o.lease_token = t.token
    """
)

# The peer is unreachable or busy: not the message's fault, so it never counts towards parking.
# A peer whose database is down answers UNAVAILABLE (grpc_errors.infrastructure_status), and a
# serialization conflict ABORTED. UNKNOWN is the transport's (a stream reset when the peer died
# mid-call): a flowpair server maps every error of its own to a definite status.
_TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
    }
)
# The peer says the message itself can never succeed: park at once.
_POISON = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED})


@dataclass(frozen=True, kw_only=True)
class RelaySettings:
    """Tuning of one relay; defaults suit a service on a LAN."""

    batch_size: int = 100
    """Messages claimed (and sent concurrently) per round."""
    poll_interval: float = 2.0
    """Seconds between polls when no notification arrives (the fallback)."""
    max_rejections: int = 8
    """Rejections by the peer before a message is parked."""
    backoff_base: float = 0.2
    """Delay after the first failure; doubles with each further one, with jitter."""
    backoff_max: float = 60.0
    """Longest delay after a rejection."""
    transient_backoff_max: float = 2.0
    """Longest delay while the peer is unreachable, so recovery is noticed quickly."""
    delivery_timeout: float = 10.0
    """Deadline of each delivery call, in seconds."""
    lease_seconds: float = 15.0
    """How long a claim holds its rows: longer than a delivery can take, and how long a
    crashed relay's messages wait before another relay takes them over."""
    max_in_flight_batches: int = 4
    """Batches delivered at once: a new round is claimed while earlier ones are in flight."""

    def __post_init__(self) -> None:
        if self.lease_seconds <= self.delivery_timeout:
            raise ValueError(
                f"the relay's lease ({self.lease_seconds} s) must outlast a delivery"
                f" ({self.delivery_timeout} s), or a slow delivery would be taken over"
            )
        if self.max_in_flight_batches < 1:
            raise ValueError("max_in_flight_batches must be 1 or more")
        if not 1 <= self.batch_size <= MAX_MESSAGES:
            raise ValueError(f"batch_size must be between 1 and {MAX_MESSAGES}")


@dataclass(frozen=True)
class _Claimed:
    id: int
    message_id: uuid.UUID
    destination: str
    method: str
    ordering_key: uuid.UUID
    seq: int
    payload: bytes
    headers: Mapping[str, str]
    attempts: int
    rejections: int
    lease_token: int


@dataclass(frozen=True)
class _Outcome:
    claimed: _Claimed
    code: grpc.StatusCode
    error: str


def _backoff(failures: int, base: float, cap: float) -> float:
    delay: float = min(cap, base * 2 ** max(0, failures - 1))
    return delay * random.uniform(0.8, 1.2)


def _identity(payload: bytes) -> bytes:
    return payload


def _headers(m: _Claimed) -> dict[str, str]:
    headers = json.loads(m.headers) if isinstance(m.headers, str) else m.headers
    return dict(headers)


def _delivery(m: _Claimed, *, batch: int = 1) -> tracing.Delivery:
    """The delivery's span, in the trace of the message's stored context; its ``headers``
    are what to send, so the peer's handling is a child of the delivery."""
    return tracing.delivery(
        m.method,
        _headers(m),
        flow_id=str(m.ordering_key),
        message_id=str(m.message_id),
        seq=m.seq,
        attempt=m.attempts + 1,
        batch=batch,
    )


# Below the peers' 5 MiB receive limit, with room for the envelopes.
_MAX_BATCH_BYTES = 4 * 1024 * 1024
# A batch failing as a whole with these is retried at once as single calls.
_SEND_SINGLY = frozenset(
    {
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INVALID_ARGUMENT,
    }
)


class Relay:
    """Delivers the outbox rows written by ``source`` to the peers in ``channels``."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        listener: Listener | None,
        source: str,
        channels: Mapping[str, grpc.aio.Channel],
        settings: RelaySettings = RelaySettings(),
    ) -> None:
        self._engine = engine
        self._source = source
        self._channels = channels
        self._settings = settings
        self._owner = uuid.uuid4()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._next_due: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(settings.max_in_flight_batches)
        self._in_flight: set[asyncio.Task[bool]] = set()
        self._kicks = 0
        self._unbatched: set[str] = set()
        if listener is not None:
            listener.subscribe(NOTIFY_CHANNEL, self._on_notify)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"relay-{self._source}")

    async def stop(self) -> None:
        """Finish the batches in flight (recording their outcomes), then stop."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def kick(self) -> None:
        """Wake the relay now (after a local commit, or a notification)."""
        self._kicks += 1
        self._wake.set()

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self._slots.acquire()
            if self._stopping.is_set():
                self._slots.release()
                break
            try:
                batch = await self._claim()
            except Exception as error:
                self._slots.release()
                # Its own database gone: keep polling, quietly, until it is back.
                if is_unavailable(error):
                    log.warning("relay claim failed: database unavailable: %r", error)
                else:
                    log.exception("relay claim failed", extra={"source": self._source})
                await self._sleep(self._settings.poll_interval)
                continue
            if not batch:
                self._slots.release()
                await self._sleep(self._wait_time())
                continue
            task = asyncio.create_task(self._deliver_and_record(batch, self._kicks))
            self._in_flight.add(task)
            task.add_done_callback(self._batch_done)
            if len(batch) < self._settings.batch_size:
                # Nothing more is claimable until a batch ends (its successors) or a commit.
                await self._sleep(self._wait_time())

    def _batch_done(self, task: asyncio.Task[bool]) -> None:
        self._in_flight.discard(task)
        self._slots.release()
        if task.cancelled() or task.exception() is not None or task.result():
            # Successors of what was just delivered are claimable now, or a failure moved the
            # next due time: claim again rather than wait. Otherwise nothing is claimable that
            # a later commit's kick or notification would not announce.
            self._wake.set()

    def _wait_time(self) -> float:
        wait = self._settings.poll_interval
        if self._next_due is not None:
            wait = min(wait, max(0.0, self._next_due - time.monotonic()))
            self._next_due = None
        return wait

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    async def deliver_once(self) -> int:
        """Claim one batch, deliver it, record the outcomes; return how many were claimed."""
        batch = await self._claim()
        if batch:
            await self._deliver_and_record(batch)
        return len(batch)

    async def _claim(self) -> list[_Claimed]:
        # The outbox of every tenant (its row-level security policy admits the system scope).
        with db_scope.system():
            async with self._engine.begin() as conn:
                rows = await conn.execute(
                    _CLAIM,
                    {
                        "source": self._source,
                        "limit": self._settings.batch_size,
                        "owner": self._owner,
                        "lease": self._settings.lease_seconds,
                    },
                )
                return [_Claimed(*row) for row in rows]

    async def _deliver_and_record(self, batch: list[_Claimed], kicks: int = 0) -> bool:
        """Deliver and record a batch claimed after ``kicks`` wake-ups; whether the relay
        should claim again at once: a delivered message has a successor, a message failed, or
        a commit announced itself meanwhile (its message may have waited behind this batch's
        and been passed over by a claim in between)."""
        by_peer: dict[str, list[_Claimed]] = {}
        for m in batch:
            by_peer.setdefault(m.destination, []).append(m)
        sent = await asyncio.gather(*(self._send_to(peer, ms) for peer, ms in by_peer.items()))
        outcomes = [o for outcomes in sent for o in outcomes]
        try:
            with db_scope.system():
                async with self._engine.begin() as conn:
                    again = await self._record(conn, outcomes)
            return again or self._kicks != kicks
        except Exception as error:
            # The outcomes are lost, not the messages: their leases run out and they are
            # delivered again, which the consumers' inboxes make harmless.
            log.warning(
                "relay could not record %d outcome(s); redelivery after the lease: %r",
                len(outcomes),
                error,
            )
            return True

    async def _send_to(self, peer: str, batch: list[_Claimed]) -> list[_Outcome]:
        """A peer's messages in ``DeliverMessages`` calls of at most ``_MAX_BATCH_BYTES``."""
        chunks: list[list[_Claimed]] = [[]]
        size = 0
        for m in batch:
            if chunks[-1] and size + len(m.payload) > _MAX_BATCH_BYTES:
                chunks.append([])
                size = 0
            chunks[-1].append(m)
            size += len(m.payload)
        sent = await asyncio.gather(*(self._send_batch(peer, c) for c in chunks))
        return [o for outcomes in sent for o in outcomes]

    async def _send_batch(self, peer: str, batch: list[_Claimed]) -> list[_Outcome]:
        """One ``DeliverMessages`` call; single calls to a peer that does not serve it (an
        older version during an upgrade), or when the batch as a whole could not be applied
        in time or in size, so that one slow or large message delays only its own flow."""
        channel = self._channels.get(peer)
        if channel is None or len(batch) == 1 or peer in self._unbatched:
            return list(await asyncio.gather(*(self._send(m) for m in batch)))
        call = channel.unary_unary(
            BATCH_METHOD,
            request_serializer=batch_pb2.DeliverMessagesRequest.SerializeToString,
            response_deserializer=batch_pb2.DeliverMessagesResponse.FromString,
        )
        # A span per message, each in its own flow's trace: the call itself belongs to none.
        deliveries = [_delivery(m, batch=len(batch)) for m in batch]
        request = batch_pb2.DeliverMessagesRequest(
            messages=[
                batch_pb2.OutboxMessage(
                    message_id=str(m.message_id),
                    method=m.method,
                    payload=m.payload,
                    headers=d.headers,
                )
                for m, d in zip(batch, deliveries, strict=True)
            ]
        )
        started = time.perf_counter()
        try:
            response = await call(request, timeout=self._settings.delivery_timeout)
        except grpc.aio.AioRpcError as error:
            for d in deliveries:
                d.end(error.code())
            if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                self._unbatched.add(peer)
            if error.code() in _SEND_SINGLY:
                return list(await asyncio.gather(*(self._send(m) for m in batch)))
            failed = f"{error.code().name}: {error.details()}"
            outcomes = [_Outcome(m, error.code(), failed) for m in batch]
        except BaseException:
            # Stopped (cancelled) or failed otherwise: the spans end, unexported else.
            for d in deliveries:
                d.end(grpc.StatusCode.CANCELLED)
            raise
        else:
            results = {r.message_id: r for r in response.results}
            outcomes = []
            for m in batch:
                r = results.get(str(m.message_id))
                if r is None:
                    outcomes.append(_Outcome(m, grpc.StatusCode.INTERNAL, "no result returned"))
                    continue
                code = STATUS_CODES.get(r.code, grpc.StatusCode.UNKNOWN)
                error_text = "" if code == grpc.StatusCode.OK else f"{code.name}: {r.message}"
                outcomes.append(_Outcome(m, code, error_text))
            for d, o in zip(deliveries, outcomes, strict=True):
                d.end(o.code)
        elapsed = (time.perf_counter() - started) * 1e3
        for o in outcomes:
            self._log_delivery(o, elapsed, batched=len(batch))
        return outcomes

    def _log_delivery(self, o: _Outcome, ms: float, *, batched: int = 1) -> None:
        m = o.claimed
        logs.reset()
        logs.bind(flow_id=str(m.ordering_key), message_id=str(m.message_id), method=m.method)
        log.info(
            "outbox delivery",
            extra={
                "seq": m.seq,
                "attempt": m.attempts + 1,
                "code": o.code.name,
                "ms": round(ms, 2),
                "batch": batched,
                **({"error": o.error} if o.error else {}),
            },
        )

    async def _send(self, m: _Claimed) -> _Outcome:
        channel = self._channels.get(m.destination)
        if channel is None:
            return _Outcome(m, grpc.StatusCode.UNIMPLEMENTED, f"no peer named {m.destination!r}")
        delivery = _delivery(m)
        metadata = (*delivery.headers.items(), (MESSAGE_ID_HEADER, str(m.message_id)))
        call = channel.unary_unary(
            m.method, request_serializer=_identity, response_deserializer=_identity
        )
        started = time.perf_counter()
        try:
            await call(m.payload, metadata=metadata, timeout=self._settings.delivery_timeout)
        except grpc.aio.AioRpcError as error:
            outcome = _Outcome(m, error.code(), f"{error.code().name}: {error.details()}")
        else:
            outcome = _Outcome(m, grpc.StatusCode.OK, "")
        delivery.end(outcome.code)
        self._log_delivery(outcome, (time.perf_counter() - started) * 1e3)
        return outcome

    async def _record(self, conn: AsyncConnection, outcomes: list[_Outcome]) -> bool:
        """Record the outcomes; whether a delivered message has an undelivered successor, or
        a message failed."""
        delivered = [o.claimed for o in outcomes if o.code == grpc.StatusCode.OK]
        successors = False
        if delivered:
            result = await conn.execute(
                _DELIVERED,
                {
                    "ids": [m.id for m in delivered],
                    "tokens": [m.lease_token for m in delivered],
                    "owner": self._owner,
                },
            )
            successors = any(row[0] for row in result)
        s = self._settings
        failed: dict[str, list[Any]] = {
            k: [] for k in ("ids", "tokens", "rejections", "errors", "delays", "parks")
        }
        for o in outcomes:
            if o.code == grpc.StatusCode.OK:
                continue
            m = o.claimed
            if o.code in _TRANSIENT:
                rejections, park = m.rejections, False
                delay = _backoff(m.attempts + 1, s.backoff_base, s.transient_backoff_max)
            else:
                rejections = m.rejections + 1
                park = o.code in _POISON or rejections >= s.max_rejections
                delay = _backoff(rejections, s.backoff_base, s.backoff_max)
            if park:
                log.error(
                    "outbox message parked",
                    extra={
                        "flow_id": str(m.ordering_key),
                        "message_id": str(m.message_id),
                        "method": m.method,
                        "error": o.error,
                    },
                )
            for k, v in zip(
                failed, (m.id, m.lease_token, rejections, o.error, delay, park), strict=True
            ):
                failed[k].append(v)
            if not park:
                due = time.monotonic() + delay
                self._next_due = due if self._next_due is None else min(self._next_due, due)
        if failed["ids"]:
            await conn.execute(_FAILED, {**failed, "owner": self._owner})
        return successors or bool(failed["ids"])

    def _on_notify(self, payload: str | None) -> None:
        # None: the listener (re)connected and may have missed notifications.
        if payload is None or payload == self._source:
            self.kick()
