"""Opaque, filter-bound page tokens for keyset pagination (AIP-158)."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import datetime

from flowpair_shared.errors import FieldViolation, InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(requested: int, *, default: int = DEFAULT_PAGE_SIZE) -> int:
    if requested < 0:
        raise InvalidArgument([FieldViolation("page_size", "must not be negative")])
    return min(requested or default, MAX_PAGE_SIZE)


def _fingerprint(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:16]


def encode(position: tuple[datetime, uuid.UUID], query: str) -> str:
    """A token for the page after ``position``, valid only with the same ``query``."""
    body = {"t": position[0].isoformat(), "id": str(position[1]), "q": _fingerprint(query)}
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode()


def decode(token: str, query: str) -> tuple[datetime, uuid.UUID] | None:
    """The position in ``token``; None for an empty token; InvalidArgument if foreign."""
    if not token:
        return None
    try:
        body = json.loads(base64.urlsafe_b64decode(token.encode()))
        position = (datetime.fromisoformat(body["t"]), uuid.UUID(body["id"]))
        same_query = body["q"] == _fingerprint(query)
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument(
            [FieldViolation("page_token", "is not a token returned by this method")]
        ) from None
    if not same_query:
        raise InvalidArgument([FieldViolation("page_token", "was issued for a different filter")])
    return position


def encode_offset(position: int, query: str) -> str:
    """A token for the page after sequence ``position`` (for ordered histories)."""
    body = {"after": position, "q": _fingerprint(query)}
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode()


def decode_offset(token: str, query: str) -> int:
    """The sequence in ``token``; 0 for an empty token; InvalidArgument if foreign."""
    if not token:
        return 0
    try:
        body = json.loads(base64.urlsafe_b64decode(token.encode()))
        position = int(body["after"])
        same_query = body["q"] == _fingerprint(query)
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument(
            [FieldViolation("page_token", "is not a token returned by this method")]
        ) from None
    if not same_query or position < 0:
        raise InvalidArgument([FieldViolation("page_token", "was issued for another request")])
    return position
