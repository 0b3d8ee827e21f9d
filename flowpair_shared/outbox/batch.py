"""Batched delivery: many outbox messages in one internal call, applied in one transaction.

The relay groups a round's messages by peer and sends them as one ``DeliverMessages`` call.
The consumer applies them in order inside one database transaction, each in a savepoint of
its own (``UnitOfWork`` joins the batch's transaction while ``in_batch`` is active), and
answers per message. A message refused by its handler rolls back only its savepoint; when the
transaction cannot commit, the call fails as a whole and no message of it took effect, so
the relay retries them all (the inbox makes the retry of anything applied a no-op).

Each message runs as the call it stands for would: its tenant from its own headers, its
message id for the inbox, the method's own handler (``Route``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowpair.internal.v1 import message_batch_service_pb2 as batch_pb2
from flowpair.internal.v1 import message_batch_service_pb2_grpc as batch_pb2_grpc
from flowpair_shared import logs, tenancy, tracing
from flowpair_shared.db_scope import Savepoints
from flowpair_shared.dbfailures import Failure, classify
from flowpair_shared.domain import IllegalTransition
from flowpair_shared.errors import DomainError, InvalidArgument, MalformedRequest
from flowpair_shared.grpc_errors import to_status
from flowpair_shared.inputs import nul_violations
from flowpair_shared.outbox.inbox import MESSAGE_ID_HEADER

log = logging.getLogger("flowpair.batch")

SERVICE = "flowpair.internal.v1.MessageBatchService"
BATCH_METHOD = f"/{SERVICE}/DeliverMessages"
"""The one internal method whose call carries no tenant: each message carries its own."""
MAX_MESSAGES = 1000
LOCK_TIMEOUT = "1s"
"""How long a message of a batch waits for a row lock before it alone is retried later."""
STATEMENT_TIMEOUT = "2s"
"""How long one statement of a batch's message may run before it alone is retried later."""
DEADLINE_MARGIN = 2.5
"""Seconds before the caller's deadline when no further message is started: the ones begun
may take a statement timeout each, and the commit must still reach the caller in time."""

Metadata = tuple[tuple[str, str], ...]
STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}


class MessageContext:
    """What a handler reads from its call, for a message of a batch: its metadata."""

    def __init__(self, metadata: Metadata) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> Metadata:
        return self._metadata


Handler = Callable[[Any, MessageContext], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    """How one method's message is applied: its request type and its servicer method."""

    parse: Callable[[bytes], Any]
    handle: Handler
    type_name: str = "request"


_batch: ContextVar[tuple[AsyncConnection, Savepoints] | None] = ContextVar(
    "flowpair_batch", default=None
)


def batch_connection() -> tuple[AsyncConnection, Savepoints] | None:
    """The connection whose transaction the messages of the running batch share, and its
    savepoints, if a batch is running."""
    return _batch.get()


@contextmanager
def in_batch(conn: AsyncConnection) -> Iterator[None]:
    token = _batch.set((conn, Savepoints(conn)))
    try:
        yield
    finally:
        _batch.reset(token)


def _result(message_id: str, code: grpc.StatusCode = grpc.StatusCode.OK, message: str = "") -> Any:
    return batch_pb2.DeliveryResult(message_id=message_id, code=code.value[0], message=message)


def _refused(message_id: str, error: DomainError | IllegalTransition) -> Any:
    status = to_status(error)
    return _result(message_id, status.code, status.details)


class MessageBatchServicer(batch_pb2_grpc.MessageBatchServiceServicer):
    """Applies batches of the peer's messages with ``routes`` (method path -> handler)."""

    def __init__(self, engine: AsyncEngine, routes: Mapping[str, Route]) -> None:
        self._engine = engine
        self._routes = routes

    async def DeliverMessages(
        self, request: batch_pb2.DeliverMessagesRequest, context: Any
    ) -> batch_pb2.DeliverMessagesResponse:
        if len(request.messages) > MAX_MESSAGES:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"at most {MAX_MESSAGES} messages per call"
            )
        results = []
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        # A transaction in no tenant's scope: each message's savepoint sets its own.
        async with self._engine.connect() as conn, conn.begin():
            # One flow's message waiting on a lock or a slow statement must not hold up the
            # others for long: it alone is answered ABORTED and retried.
            await conn.exec_driver_sql(
                f"SELECT set_config('lock_timeout', '{LOCK_TIMEOUT}', true),"
                f" set_config('statement_timeout', '{STATEMENT_TIMEOUT}', true)"
            )
            with in_batch(conn):
                for m in request.messages:
                    if deadline is not None and deadline - time.monotonic() < DEADLINE_MARGIN:
                        # Commit what is done rather than lose it all to the caller's deadline.
                        results.append(
                            _result(m.message_id, grpc.StatusCode.UNAVAILABLE, "batch out of time")
                        )
                        continue
                    results.append(await self._apply(m))
        return batch_pb2.DeliverMessagesResponse(results=results)

    async def _apply(self, m: Any) -> Any:
        route = self._routes.get(m.method)
        if route is None:
            return _result(m.message_id, grpc.StatusCode.UNIMPLEMENTED, f"no method {m.method}")
        metadata: Metadata = (*sorted(m.headers.items()), (MESSAGE_ID_HEADER, m.message_id))
        try:
            tenant = tenancy.tenant_from_metadata(metadata)
            request = _parsed(route, m.payload)
        except DomainError as error:
            return _refused(m.message_id, error)
        token = tenancy.set_current(tenant)
        with (
            logs.scoped(
                rpc=m.method,
                message_id=m.message_id,
                client_account_id=str(tenant.client_account_id),
                engagement_id=str(tenant.engagement_id),
            ),
            # The message's own server span, as its single call would have: a child of the
            # relay's delivery span (in its headers), in its flow's trace; the batch's call,
            # which carries messages of many flows, is only linked.
            tracing.server_span(m.method, metadata, link_current=True) as span,
        ):
            try:
                result = await self._handle(m, route, request, metadata)
            finally:
                tenancy.reset(token)
            span.end(STATUS_CODES.get(result.code, grpc.StatusCode.UNKNOWN))
            return result

    async def _handle(self, m: Any, route: Route, request: Any, metadata: Metadata) -> Any:
        try:
            await route.handle(request, MessageContext(metadata))
        except (DomainError, IllegalTransition) as error:
            return _refused(m.message_id, error)
        except Exception as error:
            failure = classify(error)
            if failure in (Failure.CONFLICT, Failure.TIMEOUT):
                # A lock wait past LOCK_TIMEOUT, a deadlock, a statement past
                # STATEMENT_TIMEOUT: only this savepoint is undone; the message is retried.
                return _result(m.message_id, grpc.StatusCode.ABORTED, f"retry: {error!r}"[:300])
            if failure is not None:
                raise  # the transaction is lost: the whole call fails, every message retried
            log.exception("unhandled error applying %s", m.method)
            return _result(m.message_id, grpc.StatusCode.INTERNAL, "internal error; see logs")
        return _result(m.message_id)


def _parsed(route: Route, payload: bytes) -> Any:
    """The message's request, checked as the interceptor checks a single call's."""
    try:
        request = route.parse(payload)
    except Exception:
        raise MalformedRequest(route.type_name) from None
    violations = nul_violations(request)
    if violations:
        raise InvalidArgument(violations)
    return request


def routes_of(servicers: Sequence[tuple[Any, Any]]) -> dict[str, Route]:
    """Routes for every unary method of each ``(servicer, pb2 module)``: what the peer may
    send as single calls on this port, it may send in a batch."""
    out: dict[str, Route] = {}
    for servicer, module in servicers:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                request_type = getattr(module, method.input_type.name)
                out[f"/{service.full_name}/{method.name}"] = Route(
                    request_type.FromString,
                    getattr(servicer, method.name),
                    method.input_type.full_name,
                )
    return out


def add_to_server(
    server: grpc.aio.Server, engine: AsyncEngine, servicers: Sequence[tuple[Any, Any]]
) -> None:
    """Serve ``MessageBatchService`` for the internal ``servicers`` on ``server``."""
    batch_pb2_grpc.add_MessageBatchServiceServicer_to_server(
        MessageBatchServicer(engine, routes_of(servicers)), server
    )


DESCRIPTOR = batch_pb2.DESCRIPTOR.services_by_name["MessageBatchService"]
