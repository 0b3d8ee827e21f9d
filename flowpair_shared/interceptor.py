"""Server interceptor: tenant context, deadlines, structured RPC logs, trace spans and error
mapping.

Every RPC of a flowpair service goes through here, so servicers only translate messages and
call handlers: they never parse metadata, build statuses or catch exceptions themselves.

Requests are checked here before a servicer sees them: bytes that do not parse as the
method's message are INVALID_ARGUMENT (not the framework's UNKNOWN), and so is a NUL in any
string field (``inputs.nul_violations``). Errors map to statuses in one place: domain errors
with rich details, database outages to UNAVAILABLE, conflicts to ABORTED and statements the
database cancelled for their statement timeout to DEADLINE_EXCEEDED
(``grpc_errors.infrastructure_status``), the call's own deadline to DEADLINE_EXCEEDED, and
anything else to INTERNAL without internals in the message.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from flowpair_shared import inputs, logs, metrics, tenancy, tracing
from flowpair_shared.auth.access import Access
from flowpair_shared.domain import IllegalTransition
from flowpair_shared.errors import DomainError, InvalidArgument, MalformedRequest
from flowpair_shared.grpc_errors import infrastructure_status, to_status

log = logging.getLogger("flowpair.rpc")

# Infrastructure services that need no tenant (health probes, grpcurl's reflection).
_UNSCOPED_PREFIXES = ("/grpc.health.", "/grpc.reflection.")


class _Rpc:
    """Per-call bookkeeping shared by the unary and streaming wrappers."""

    def __init__(
        self, method: str, context: grpc.aio.ServicerContext[Any, Any], access: Access
    ) -> None:
        self.method = method
        self.access = access
        self.context = context
        self.started = time.perf_counter()
        # Current for the rest of the call, so what the call writes to the outbox carries it;
        # a child of the caller's trace context, when the metadata has one.
        self.span = (
            tracing.server_span(method, context.invocation_metadata())
            if tracing.enabled()
            else tracing.UNTRACED
        )

    async def enter(self) -> None:
        logs.reset()
        logs.bind(rpc=self.method)
        tenant = await self.access.admit(self.method, self.context)
        if tenant is None:
            return  # a batch of messages: each is admitted with its own tenant
        tenancy.set_current(tenant)
        logs.bind(
            client_account_id=str(tenant.client_account_id),
            engagement_id=str(tenant.engagement_id),
            user_id=str(tenant.user_id),
        )

    def timeout(self) -> float | None:
        remaining = self.context.time_remaining()
        return remaining if remaining is not None and remaining < 1e9 else None

    async def fail(self, error: BaseException, *, deadline_expired: bool = False) -> None:
        if isinstance(error, DomainError | IllegalTransition):
            status = to_status(error)
            self.done(status.code)
            await self.context.abort_with_status(status)
        if deadline_expired:
            self.done(grpc.StatusCode.DEADLINE_EXCEEDED)
            await self.context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
        infrastructure = infrastructure_status(error)
        if infrastructure is not None:
            log.warning("database failure in %s: %r", self.method, error)
            self.done(infrastructure.code)
            await self.context.abort_with_status(infrastructure)
        log.exception("unhandled error in %s", self.method)
        self.done(grpc.StatusCode.INTERNAL)
        await self.context.abort(grpc.StatusCode.INTERNAL, "internal error; see server logs")

    def aborted(self) -> None:
        """A handler aborted the call itself (context.abort): count it with the code it set."""
        code = self.context.code()
        self.done(code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN)

    def done(self, code: grpc.StatusCode, *, detach: bool = True) -> None:
        seconds = time.perf_counter() - self.started
        metrics.rpc_finished(self.method, code.name, seconds)
        log.info("rpc finished", extra={"code": code.name, "ms": round(seconds * 1e3, 2)})
        self.span.end(code, detach=detach)


def _is_abort(error: BaseException) -> bool:
    # context.abort raises grpc.aio.AbortError; it must pass through untouched.
    return isinstance(error, grpc.aio.AbortError)


class FlowpairInterceptor(grpc.aio.ServerInterceptor):
    """Wrap every flowpair RPC handler: ``access`` admits each call (authentication and
    authorization) and names its tenant, then the request is checked. Health and reflection
    need no credentials and are not logged; of the checks they get only the one for
    undecodable requests."""

    def __init__(self, access: Access) -> None:
        self._access = access

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None:
            return handler
        request = _RequestType(handler.request_deserializer)
        if method.startswith(_UNSCOPED_PREFIXES):
            unary, stream = _wrap_unscoped_unary, _wrap_unscoped_stream
        else:
            unary = functools.partial(_wrap_unary, access=self._access)
            stream = functools.partial(_wrap_stream, access=self._access)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                unary(method, handler.unary_unary, request, streaming=False),
                request_deserializer=request.deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                unary(method, handler.stream_unary, request, streaming=True),
                request_deserializer=request.deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                stream(method, handler.unary_stream, request, streaming=False),
                request_deserializer=request.deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            stream(method, handler.stream_stream, request, streaming=True),
            request_deserializer=request.deserializer,
            response_serializer=handler.response_serializer,
        )


class _Undecodable:
    """What a request message that does not parse becomes; the wrapped behaviour refuses it
    (the framework would answer UNKNOWN with the parser's exception class instead)."""

    __slots__ = ()


_UNDECODABLE = _Undecodable()


class _RequestType:
    """The method's request deserializer, made total, and the checks on what it produced."""

    def __init__(self, deserializer: Callable[[bytes], Any] | None) -> None:
        self._deserializer = deserializer
        owner = getattr(deserializer, "__self__", None)  # XRequest.FromString
        descriptor = getattr(owner, "DESCRIPTOR", None)
        self.name: str = getattr(descriptor, "full_name", "request")
        self.deserializer = self._deserialize if deserializer is not None else None

    def _deserialize(self, data: bytes) -> Any:
        assert self._deserializer is not None
        try:
            return self._deserializer(data)
        except Exception:
            return _UNDECODABLE

    def check(self, request: Any, *, nul: bool = True) -> Any:
        """``request`` itself; InvalidArgument if it did not parse or holds NUL in a string."""
        if request is _UNDECODABLE:
            raise MalformedRequest(self.name)
        if nul and isinstance(request, Message):
            violations = inputs.nul_violations(request)
            if violations:
                raise InvalidArgument(violations)
        return request

    async def check_stream(self, requests: AsyncIterator[Any], *, nul: bool = True) -> Any:
        async for request in requests:
            yield self.check(request, nul=nul)

    def checked(self, request: Any, *, streaming: bool, nul: bool = True) -> Any:
        if streaming:
            return self.check_stream(request, nul=nul)
        return self.check(request, nul=nul)


def _wrap_unary(
    method: str, behavior: Any, requests: _RequestType, *, streaming: bool, access: Access
) -> Any:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        rpc = _Rpc(method, context, access)
        deadline: asyncio.Timeout | None = None
        try:
            await rpc.enter()
            async with asyncio.timeout(rpc.timeout()) as deadline:
                checked = requests.checked(request, streaming=streaming)
                response = await behavior(checked, context)
        except asyncio.CancelledError:
            rpc.done(grpc.StatusCode.CANCELLED)  # the client went away (or the server stops)
            raise
        except Exception as error:
            if _is_abort(error):
                rpc.aborted()
                raise
            await rpc.fail(error, deadline_expired=_expired(deadline))
            raise  # unreachable: fail() aborts
        rpc.done(grpc.StatusCode.OK)
        return response

    return wrapped


def _wrap_stream(
    method: str, behavior: Any, requests: _RequestType, *, streaming: bool, access: Access
) -> Any:
    async def wrapped(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        rpc = _Rpc(method, context, access)
        deadline: asyncio.Timeout | None = None
        try:
            await rpc.enter()
            async with asyncio.timeout(rpc.timeout()) as deadline:
                checked = requests.checked(request, streaming=streaming)
                async for item in behavior(checked, context):
                    yield item
        except asyncio.CancelledError:
            # Most watches end so: the client stops and gRPC cancels the task reading it.
            rpc.done(grpc.StatusCode.CANCELLED)
            raise
        except GeneratorExit:
            # Or the stream's generator is closed, possibly later from another task.
            rpc.done(grpc.StatusCode.CANCELLED, detach=False)
            raise
        except Exception as error:
            if _is_abort(error):
                rpc.aborted()
                raise
            await rpc.fail(error, deadline_expired=_expired(deadline))
            raise
        rpc.done(grpc.StatusCode.OK)

    return wrapped


def _expired(deadline: asyncio.Timeout | None) -> bool:
    """Whether the call's own deadline ended it (not a timeout deeper down, e.g. connecting
    to the database, which is an outage)."""
    return deadline is not None and deadline.expired()


# Health and reflection: no tenant, no logs; only undecodable requests are refused here.


async def _refuse_undecodable(
    error: Exception, context: grpc.aio.ServicerContext[Any, Any]
) -> None:
    if isinstance(error, MalformedRequest):
        await context.abort_with_status(to_status(error))


def _wrap_unscoped_unary(
    method: str, behavior: Any, requests: _RequestType, *, streaming: bool
) -> Any:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await behavior(
                requests.checked(request, streaming=streaming, nul=False), context
            )
        except MalformedRequest as error:
            await _refuse_undecodable(error, context)
            raise

    return wrapped


def _wrap_unscoped_stream(
    method: str, behavior: Any, requests: _RequestType, *, streaming: bool
) -> Any:
    async def wrapped(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        try:
            checked = requests.checked(request, streaming=streaming, nul=False)
            async for item in behavior(checked, context):
                yield item
        except MalformedRequest as error:
            await _refuse_undecodable(error, context)
            raise

    return wrapped
