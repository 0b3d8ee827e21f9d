"""Conversions between protobuf and domain values shared by both gRPC layers."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum
from typing import TypeVar

from google.protobuf import timestamp_pb2

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
