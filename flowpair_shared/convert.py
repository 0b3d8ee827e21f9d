"""Conversions between protobuf and domain values shared by both gRPC layers."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum
from typing import Any, Protocol, TypeVar

from google.protobuf import timestamp_pb2

from flowpair.v1 import flow_pb2
from flowpair_shared.errors import Validator

E = TypeVar("E", bound=IntEnum)


def enum_word(enum: Any, value: int, prefix: str, *, lower: bool = False, unset: str = "") -> str:
    """A protobuf enum value's name without its prefix (``VIRTUAL_MACHINE``; with ``lower``,
    ``virtual_machine`` as the data spells it); ``unset`` for the zero value."""
    if not value:
        return unset
    name = str(enum.Name(value)).removeprefix(prefix)
    return name.lower() if lower else name


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


# google.protobuf.Timestamp's documented range, which is also what datetime and PostgreSQL's
# timestamptz can hold: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799


def from_timestamp(value: timestamp_pb2.Timestamp, field: str, v: Validator) -> datetime | None:
    """A request's Timestamp as an aware datetime; a violation (and None) when its seconds or
    nanos are outside the range the Timestamp type defines. Every Timestamp read from a
    request goes through here."""
    if not MIN_TIMESTAMP_SECONDS <= value.seconds <= MAX_TIMESTAMP_SECONDS:
        v.add(field, "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z")
        return None
    if not 0 <= value.nanos <= 999_999_999:
        v.add(field, f"nanos must be between 0 and 999999999, got {value.nanos}")
        return None
    return value.ToDatetime(tzinfo=UTC)


def enum_value(
    enum_type: type[E], value: int, field: str, v: Validator, proto_prefix: str
) -> E | None:
    """The domain enum for a wire value; a violation for UNSPECIFIED or an unknown number."""
    if value == 0:
        v.add(field, f"is required (not {proto_prefix}UNSPECIFIED)")
        return None
    try:
        return enum_type(value)
    except ValueError:
        v.add(field, f"has unknown value {value}")
        return None


class Failure(Protocol):
    """Any domain error record with a reason code and a message."""

    @property
    def reason(self) -> str: ...

    @property
    def message(self) -> str: ...


MAX_ERROR_REASON = 100
MAX_ERROR_MESSAGE = 2000
"""Bounds of a PhaseError's fields: senders clip to them, the receiver refuses longer ones."""


def _clip(text: str, limit: int) -> str:
    text = text.replace("\x00", "\\0")  # text columns cannot hold NUL
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def phase_error(error: Failure | None) -> flow_pb2.PhaseError | None:
    if error is None:
        return None
    return flow_pb2.PhaseError(
        reason=_clip(error.reason, MAX_ERROR_REASON),
        message=_clip(error.message, MAX_ERROR_MESSAGE),
    )


def phase_state(
    phase: IntEnum, status: IntEnum, update_time: datetime | None, error: Failure | None
) -> flow_pb2.PhaseState:
    return flow_pb2.PhaseState(
        phase=flow_pb2.Phase.ValueType(int(phase)),
        status=flow_pb2.PhaseStatus.ValueType(int(status)),
        update_time=timestamp(update_time),
        error=phase_error(error),
    )
