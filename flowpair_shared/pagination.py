"""Opaque page tokens bound to the query they were issued for (AIP-158)."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from flowpair_shared.errors import FieldViolation, InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(requested: int, *, default: int = DEFAULT_PAGE_SIZE) -> int:
    if requested < 0:
        raise InvalidArgument([FieldViolation("page_size", "must not be negative")])
    return min(requested or default, MAX_PAGE_SIZE)


def _fingerprint(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:16]


def _seal(body: dict[str, Any], query: str) -> str:
    return base64.urlsafe_b64encode(
        json.dumps({**body, "q": _fingerprint(query)}).encode()
    ).decode()


def _foreign() -> InvalidArgument:
    return InvalidArgument([FieldViolation("page_token", "is not a token returned by this method")])


def _open(token: str, query: str) -> dict[str, Any]:
    try:
        body = json.loads(base64.urlsafe_b64decode(token.encode()))
    except ValueError:
        raise _foreign() from None
    if not isinstance(body, dict):
        raise _foreign()
    if body.get("q") != _fingerprint(query):
        raise InvalidArgument(
            [FieldViolation("page_token", "was issued for a different filter or resource")]
        )
    return body


def encode(position: tuple[datetime, uuid.UUID], query: str) -> str:
    """A token for the page after keyset ``position``, valid only with the same ``query``."""
    return _seal({"t": position[0].isoformat(), "id": str(position[1])}, query)


def decode(token: str, query: str) -> tuple[datetime, uuid.UUID] | None:
    """The keyset position in ``token``; None for an empty token; InvalidArgument if foreign."""
    if not token:
        return None
    body = _open(token, query)
    try:
        return datetime.fromisoformat(body["t"]), uuid.UUID(body["id"])
    except (ValueError, KeyError, TypeError):
        raise _foreign() from None


def encode_offset(position: int, query: str) -> str:
    """A token for the page after sequence ``position`` (for ordered histories)."""
    return _seal({"after": position}, query)


def decode_offset(token: str, query: str) -> int:
    """The sequence in ``token``; 0 for an empty token; InvalidArgument if foreign."""
    if not token:
        return 0
    body = _open(token, query)
    position = body.get("after")
    if not isinstance(position, int) or position < 0:
        raise _foreign()
    return position


def encode_named(position: tuple[str, uuid.UUID], query: str) -> str:
    """A token for the page after (name, id) ``position``, for lists ordered by name."""
    return _seal({"name": position[0], "id": str(position[1])}, query)


def decode_named(token: str, query: str) -> tuple[str, uuid.UUID] | None:
    if not token:
        return None
    body = _open(token, query)
    try:
        return str(body["name"]), uuid.UUID(body["id"])
    except (ValueError, KeyError, TypeError):
        raise _foreign() from None
