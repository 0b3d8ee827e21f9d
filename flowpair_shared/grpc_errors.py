"""The one place where domain errors become gRPC statuses with rich error details."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from flowpair_shared.domain import IllegalTransition
from flowpair_shared.errors import (
    Aborted,
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)

DOMAIN = "flowpair.dev"


def _pack(
    message: error_details_pb2.BadRequest
    | error_details_pb2.ErrorInfo
    | error_details_pb2.PreconditionFailure,
) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


# A status travels in the trailers, and clients drop trailers past 16 KiB (and may past
# 8 KiB) with RESOURCE_EXHAUSTED instead of the real error. Errors quote the client's input,
# which can be long, so the message and details are clipped to stay well within the limit:
# (message, field, description characters, violations), tried in turn until it fits.
TRAILER_BUDGET = 6 * 1024
_LIMITS = ((1024, 128, 256, 20), (256, 64, 96, 5), (96, 40, 48, 2))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _trailer_size(status: status_pb2.Status) -> int:
    """Bytes of grpc-message (percent-encoded) and grpc-status-details-bin (base64)."""
    message = sum(1 if 0x20 <= b < 0x7F and b != 0x25 else 3 for b in status.message.encode())
    return message + (len(status.SerializeToString()) + 2) // 3 * 4


def to_status(error: Exception) -> grpc.Status:
    """Build the gRPC status for a domain error (or an illegal state transition)."""
    if isinstance(error, IllegalTransition):
        error = FailedPrecondition(str(error), reason="ILLEGAL_TRANSITION", subject=error.machine)
    if not isinstance(error, DomainError):
        raise TypeError(f"not a domain error: {error!r}")
    for limits in _LIMITS:
        status = _status(error, *limits)
        if _trailer_size(status) <= TRAILER_BUDGET:
            break
    return rpc_status.to_status(status)


def _status(
    error: DomainError, message_chars: int, field_chars: int, text_chars: int, violations: int
) -> status_pb2.Status:
    code = code_pb2.INTERNAL
    message = _clip(error.message, message_chars)
    details: list[any_pb2.Any] = []
    if isinstance(error, InvalidArgument):
        code = code_pb2.INVALID_ARGUMENT
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=_clip(v.field, field_chars),
                            description=_clip(v.description, text_chars),
                        )
                        for v in error.violations[:violations]
                    ]
                )
            )
        )
    elif isinstance(error, NotFound):
        code = code_pb2.NOT_FOUND
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
                            subject=_clip(error.subject, text_chars),
                            description=message,
                        )
                    ]
                )
            )
        )
    details.append(_pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN)))
    return status_pb2.Status(code=code, message=message, details=details)
