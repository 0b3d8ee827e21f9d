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
    PermissionDenied,
    Unauthenticated,
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


def to_status(error: Exception) -> grpc.Status:
    """Build the gRPC status for a domain error (or an illegal state transition)."""
    if isinstance(error, IllegalTransition):
        error = FailedPrecondition(str(error), reason="ILLEGAL_TRANSITION", subject=error.machine)
    if not isinstance(error, DomainError):
        raise TypeError(f"not a domain error: {error!r}")
    code = code_pb2.INTERNAL
    details: list[any_pb2.Any] = []
    if isinstance(error, InvalidArgument):
        code = code_pb2.INVALID_ARGUMENT
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description
                        )
                        for v in error.violations
                    ]
                )
            )
        )
    elif isinstance(error, NotFound):
        code = code_pb2.NOT_FOUND
    elif isinstance(error, Unauthenticated):
        code = code_pb2.UNAUTHENTICATED
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
                            type=error.reason, subject=error.subject, description=error.message
                        )
                    ]
                )
            )
        )
    details.append(_pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN)))
    status = status_pb2.Status(code=code, message=error.message, details=details)
    return rpc_status.to_status(status)
