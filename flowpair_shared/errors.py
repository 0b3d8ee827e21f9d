"""Domain errors. Each maps to one gRPC status with rich details in ``grpc_errors``; code
below the gRPC layer raises these and never builds statuses itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: where it is and what is wrong with it."""

    field: str
    description: str


class DomainError(Exception):
    """Base of the errors a client can act on."""

    reason: str = "ERROR"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class InvalidArgument(DomainError):
    """The request is malformed; ``violations`` names every bad field."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        detail = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(f"invalid request: {detail}")
        self.violations = tuple(violations)


class MalformedRequest(InvalidArgument):
    """The request's bytes are not the message the method takes (no field to name)."""

    reason = "MALFORMED_REQUEST"

    def __init__(self, message_type: str) -> None:
        super().__init__([])
        self.message = f"the request is not a valid serialized {message_type} message"
        self.args = (self.message,)


class NotFound(DomainError):
    """The resource does not exist for this tenant."""

    reason = "NOT_FOUND"


class FailedPrecondition(DomainError):
    """The request is well formed but the resource's state does not allow it."""

    reason = "FAILED_PRECONDITION"

    def __init__(
        self, message: str, *, reason: str = "FAILED_PRECONDITION", subject: str = ""
    ) -> None:
        super().__init__(message, reason=reason)
        self.subject = subject


class Validator:
    """Collects field violations so a client learns about every bad field at once."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.violations.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        if self.violations:
            raise InvalidArgument(self.violations)


class AlreadyExists(DomainError):
    """A resource with the client-chosen id exists already."""

    reason = "ALREADY_EXISTS"


class Aborted(DomainError):
    """A concurrent change won: re-read and try again (stale etag)."""

    reason = "ABORTED"


class Unauthenticated(DomainError):
    """No credentials, or credentials that do not verify (bad, expired, unknown)."""

    reason = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    """The caller is known but may not do this (role, client account, identity)."""

    reason = "PERMISSION_DENIED"


class Unavailable(DomainError):
    """The service cannot serve right now (e.g. still waiting for its database); retry."""

    reason = "UNAVAILABLE"


class ResourceExhausted(DomainError):
    """The service is at a limit it sets itself (e.g. concurrent uploads): back off and retry
    rather than wait in a queue."""

    reason = "RESOURCE_EXHAUSTED"
