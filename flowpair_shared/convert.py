"""Conversions between protobuf and domain values shared by both gRPC layers."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum
from typing import Protocol, TypeVar

from google.protobuf import timestamp_pb2

from flowpair.v1 import flow_pb2
from flowpair_shared.errors import Validator

E = TypeVar("E", bound=IntEnum)


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def from_timestamp(value: timestamp_pb2.Timestamp) -> datetime:
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


def phase_error(error: Failure | None) -> flow_pb2.PhaseError | None:
    if error is None:
        return None
    return flow_pb2.PhaseError(reason=error.reason, message=error.message)


def phase_state(
    phase: IntEnum, status: IntEnum, update_time: datetime | None, error: Failure | None
) -> flow_pb2.PhaseState:
    return flow_pb2.PhaseState(
        phase=flow_pb2.Phase.ValueType(int(phase)),
        status=flow_pb2.PhaseStatus.ValueType(int(status)),
        update_time=timestamp(update_time),
        error=phase_error(error),
    )
