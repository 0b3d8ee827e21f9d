"""Domain errors become statuses that always fit in a client's trailers."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from flowpair_shared.errors import Aborted, FailedPrecondition, FieldViolation, InvalidArgument
from flowpair_shared.grpc_errors import TRAILER_BUDGET, to_status


def _trailer_bytes(status: grpc.Status) -> int:
    message = sum(1 if 0x20 <= b < 0x7F and b != 0x25 else 3 for b in status.details.encode())
    binary = sum(len(v) * 4 // 3 for _, v in status.trailing_metadata)
    return message + binary


def test_short_errors_are_unchanged() -> None:
    status = to_status(InvalidArgument([FieldViolation("name", "is required")]))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.details == "invalid request: name: is required"
    rich = status_pb2.Status.FromString(status.trailing_metadata[0][1])
    bad = error_details_pb2.BadRequest()
    assert rich.details[0].Unpack(bad)
    assert [(v.field, v.description) for v in bad.field_violations] == [("name", "is required")]


def test_errors_quoting_long_input_are_clipped_to_fit_the_trailers() -> None:
    """Thirty echoed 10,000-character values (non-ASCII, so percent-encoding triples them)
    used to make a 22 KiB status that clients refused with RESOURCE_EXHAUSTED."""
    echoed = "é€😀" * 3333
    errors = [
        InvalidArgument(
            [
                FieldViolation(f"waive[{i}]{echoed}", f"{echoed!r} is not required")
                for i in range(30)
            ]
        ),
        FailedPrecondition(f"cannot approve: {echoed}", subject=echoed),
        Aborted(f"the mapping changed since etag {echoed}"),
    ]
    for error in errors:
        status = to_status(error)
        assert _trailer_bytes(status) <= TRAILER_BUDGET + 64, error.reason
        assert status.details.startswith(error.message[:40])
    bad = error_details_pb2.BadRequest()
    status_pb2.Status.FromString(to_status(errors[0]).trailing_metadata[0][1]).details[0].Unpack(
        bad
    )
    assert bad.field_violations and bad.field_violations[0].field.startswith("waive[0]")
