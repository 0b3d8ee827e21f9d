"""Server interceptor: tenant context, deadlines, structured RPC logs and error mapping.

Every RPC of a flowpair service goes through here, so servicers only translate messages and
call handlers: they never parse metadata, build statuses or catch exceptions themselves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from flowpair_shared import logs, tenancy
from flowpair_shared.auth.access import Access
from flowpair_shared.domain import IllegalTransition
from flowpair_shared.errors import DomainError
from flowpair_shared.grpc_errors import to_status

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

    async def enter(self) -> None:
        logs.reset()
        logs.bind(rpc=self.method)
        tenant = await self.access.admit(self.method, self.context)
        tenancy.set_current(tenant)
        logs.bind(
            client_account_id=str(tenant.client_account_id),
            engagement_id=str(tenant.engagement_id),
            user_id=str(tenant.user_id),
        )

    def timeout(self) -> float | None:
        remaining = self.context.time_remaining()
        return remaining if remaining is not None and remaining < 1e9 else None

    async def fail(self, error: BaseException) -> None:
        if isinstance(error, DomainError | IllegalTransition):
            status = to_status(error)
            self.done(status.code)
            await self.context.abort_with_status(status)
        if isinstance(error, TimeoutError):
            self.done(grpc.StatusCode.DEADLINE_EXCEEDED)
            await self.context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
        log.exception("unhandled error in %s", self.method)
        self.done(grpc.StatusCode.INTERNAL)
        await self.context.abort(grpc.StatusCode.INTERNAL, "internal error; see server logs")

    def done(self, code: grpc.StatusCode) -> None:
        log.info(
            "rpc finished",
            extra={"code": code.name, "ms": round((time.perf_counter() - self.started) * 1e3, 2)},
        )


def _is_abort(error: BaseException) -> bool:
    # context.abort raises grpc.aio.AbortError; it must pass through untouched.
    return isinstance(error, grpc.aio.AbortError)


class FlowpairInterceptor(grpc.aio.ServerInterceptor):
    """Wrap every flowpair RPC handler; leave health and reflection alone. ``access`` admits
    each call (authentication and authorization) and names its tenant."""

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
        if handler is None or method.startswith(_UNSCOPED_PREFIXES):
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(method, self._access, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(method, self._access, handler.stream_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(method, self._access, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            _wrap_stream(method, self._access, handler.stream_stream),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _wrap_unary(method: str, access: Access, behavior: Any) -> Any:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        rpc = _Rpc(method, context, access)
        try:
            await rpc.enter()
            async with asyncio.timeout(rpc.timeout()):
                response = await behavior(request, context)
        except Exception as error:
            if _is_abort(error):
                raise
            await rpc.fail(error)
            raise  # unreachable: fail() aborts
        rpc.done(grpc.StatusCode.OK)
        return response

    return wrapped


def _wrap_stream(method: str, access: Access, behavior: Any) -> Any:
    async def wrapped(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        rpc = _Rpc(method, context, access)
        try:
            await rpc.enter()
            async with asyncio.timeout(rpc.timeout()):
                async for item in behavior(request, context):
                    yield item
        except Exception as error:
            if _is_abort(error):
                raise
            await rpc.fail(error)
            raise
        rpc.done(grpc.StatusCode.OK)

    return wrapped
