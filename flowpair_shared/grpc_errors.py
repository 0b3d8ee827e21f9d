"""The one place where domain errors become gRPC statuses with rich error details."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from flowpair_shared.dbfailures import Failure, classify
from flowpair_shared.domain import IllegalTransition
from flowpair_shared.errors import (
    Aborted,
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

DOMAIN = "flowpair.dev"
# Statuses travel in trailers, which clients cap (8 KiB by default in gRPC core): a status
# quoting a megabyte of bad input reaches the client as RESOURCE_EXHAUSTED instead of itself.
# Budgets are UTF-8 bytes; the worst case of all of them together stays under 6 KiB.
MAX_MESSAGE = 512
MAX_DESCRIPTION = 200
MAX_VIOLATIONS = 10


def _clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, on a character boundary."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "\u2026"


def _pack(
    message: error_details_pb2.BadRequest
    | error_details_pb2.ErrorInfo
    | error_details_pb2.PreconditionFailure,
) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_status(error: Exception) -> grpc.Status:
    """Build the gRPC status for a domain error (or an illegal state transition)."""
    if isinstance(error, IllegalTransition):
        error = FailedPrecondition(str(error), reason="ILLEGAL_TRANSITION", subject=error.machine)
    if not isinstance(error, DomainError):
        raise TypeError(f"not a domain error: {error!r}")
    code = code_pb2.INTERNAL
    details: list[any_pb2.Any] = []
    message = error.message
    if isinstance(error, InvalidArgument):
        code = code_pb2.INVALID_ARGUMENT
        shown = error.violations[:MAX_VIOLATIONS]
        if shown:
            details.append(
                _pack(
                    error_details_pb2.BadRequest(
                        field_violations=[
                            error_details_pb2.BadRequest.FieldViolation(
                                field=_clip(v.field, MAX_DESCRIPTION),
                                description=_clip(v.description, MAX_DESCRIPTION),
                            )
                            for v in shown
                        ]
                    )
                )
            )
            more = len(error.violations) - len(shown)
            head = f"invalid request ({more} more not shown)" if more else "invalid request"
            message = f"{head}: " + "; ".join(
                f"{_clip(v.field, 60)}: {_clip(v.description, 100)}" for v in shown
            )
    elif isinstance(error, NotFound):
        code = code_pb2.NOT_FOUND
    elif isinstance(error, Unauthenticated):
        code = code_pb2.UNAUTHENTICATED
    elif isinstance(error, Unavailable):
        code = code_pb2.UNAVAILABLE
    elif isinstance(error, ResourceExhausted):
        code = code_pb2.RESOURCE_EXHAUSTED
    elif isinstance(error, PermissionDenied):
        code = code_pb2.PERMISSION_DENIED
    elif isinstance(error, AlreadyExists):
        code = code_pb2.ALREADY_EXISTS
    elif isinstance(error, Aborted):
        code = code_pb2.ABORTED
    elif isinstance(error, FailedPrecondition):
        code = code_pb2.FAILED_PRECONDITION
        details.append(
            _pack(
                error_details_pb2.PreconditionFailure(
                    violations=[
                        error_details_pb2.PreconditionFailure.Violation(
                            type=error.reason,
                            subject=_clip(error.subject, MAX_DESCRIPTION),
                            description=_clip(error.message, MAX_DESCRIPTION),
                        )
                    ]
                )
            )
        )
    details.append(_pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN)))
    status = status_pb2.Status(code=code, message=_clip(message, MAX_MESSAGE), details=details)
    return rpc_status.to_status(status)


_INFRASTRUCTURE = {
    Failure.UNAVAILABLE: (
        code_pb2.UNAVAILABLE,
        "DATABASE_UNAVAILABLE",
        "the service cannot reach its database right now; retry with backoff",
    ),
    Failure.CONFLICT: (
        code_pb2.ABORTED,
        "CONCURRENT_TRANSACTION",
        "a concurrent transaction conflicted with this one; retry the call",
    ),
    Failure.TIMEOUT: (
        code_pb2.DEADLINE_EXCEEDED,
        "DATABASE_STATEMENT_TIMEOUT",
        "a database statement took longer than the service allows (statement timeout),"
        " usually because of load or a long lock; retry with backoff",
    ),
}


def infrastructure_status(error: BaseException) -> grpc.Status | None:
    """The status for a database failure (see ``dbfailures``), or None when it is not one.

    The message says what to do and nothing about the internals behind it."""
    failure = classify(error)
    if failure is None:
        return None
    code, reason, message = _INFRASTRUCTURE[failure]
    info = _pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN))
    return rpc_status.to_status(status_pb2.Status(code=code, message=message, details=[info]))
