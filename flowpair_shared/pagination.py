"""Opaque, tamper-evident page tokens bound to the query they were issued for (AIP-158).

A token is ``<payload>.<mac>``, both base64url without padding: the payload is the keyset
position and a fingerprint of the query (filters, parent resource) as JSON; the mac is
HMAC-SHA256 over the payload with the deployment's page-token secret. Anything that does not
verify (made up, edited, truncated, issued by another deployment) is INVALID_ARGUMENT, and
a verified position is still range-checked before it reaches SQL.

The secret is shared by every replica with no configuration: migration 0005 stores a random
one in ``messaging.secrets``, read once per process on first use. ``FLOWPAIR_PAGE_TOKEN_SECRET``
(at least 16 characters) overrides it, e.g. to keep tokens valid across databases.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from flowpair_shared.errors import FieldViolation, InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_TOKEN_LENGTH = 2048
"""Longer than any token this module issues (a name position is at most MAX_NAME_KEY)."""
MAX_NAME_KEY = 256
"""Characters of a name kept in a named position (lists order by this prefix, then id)."""
MAX_OFFSET = 2**63 - 1
SECRET_ENV = "FLOWPAIR_PAGE_TOKEN_SECRET"
SECRET_NAME = "page_token"
_MIN_SECRET = 16
T = TypeVar("T")


def page_size(requested: int, *, default: int = DEFAULT_PAGE_SIZE) -> int:
    if requested < 0:
        raise InvalidArgument([FieldViolation("page_size", "must not be negative")])
    return min(requested or default, MAX_PAGE_SIZE)


RESPONSE_BUDGET = 2 * 1024 * 1024
"""Bytes of items one page holds at most: clients refuse messages over 4 MiB by default, and a
page of long values (cells of a CSV can be a megabyte) would otherwise be refused whole."""


def fit(items: Sequence[T], size_of: Callable[[T], int], budget: int = RESPONSE_BUDGET) -> int:
    """How many of ``items``, from the first, fit in ``budget`` bytes; always at least one (a
    page returns fewer items than asked, with a token for the rest)."""
    used = 0
    for count, item in enumerate(items):
        used += size_of(item)
        if used > budget:
            return max(count, 1)
    return len(items)


def _fingerprint(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _foreign() -> InvalidArgument:
    return InvalidArgument([FieldViolation("page_token", "is not a token returned by this method")])


class PageTokens:
    """Seals and opens page tokens with the deployment's secret.

    ``key`` is the secret itself (tests); otherwise ``FLOWPAIR_PAGE_TOKEN_SECRET`` when set,
    else the secret stored in the database behind ``engine``, read on first use (a database
    that is down then fails the list call like any other query: UNAVAILABLE).
    """

    def __init__(self, engine: AsyncEngine | None = None, *, key: bytes | None = None) -> None:
        self._engine = engine
        self._key = key
        if self._key is None:
            configured = os.environ.get(SECRET_ENV, "")
            if configured:
                if len(configured) < _MIN_SECRET:
                    raise SystemExit(f"{SECRET_ENV} must be at least {_MIN_SECRET} characters")
                self._key = configured.encode()
        if self._key is None and engine is None:
            raise ValueError("PageTokens needs a key, the environment variable or an engine")

    async def _secret(self) -> bytes:
        if self._key is None:
            assert self._engine is not None
            async with self._engine.connect() as conn:
                value = (
                    await conn.execute(
                        text("SELECT value FROM messaging.secrets WHERE name = :name"),
                        {"name": SECRET_NAME},
                    )
                ).scalar_one()
            self._key = bytes(value)
        return self._key

    def _mac(self, key: bytes, payload: bytes) -> bytes:
        return hmac.new(key, payload, hashlib.sha256).digest()

    async def _seal(self, body: dict[str, Any], query: str) -> str:
        payload = json.dumps({**body, "q": _fingerprint(query)}, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._mac(await self._secret(), payload))}"

    async def _open(self, token: str, query: str) -> dict[str, Any]:
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
            raise _foreign()
        encoded, _, mac = token.partition(".")
        try:
            payload, given = _unb64(encoded), _unb64(mac)
        except (binascii.Error, ValueError):
            raise _foreign() from None
        if not hmac.compare_digest(given, self._mac(await self._secret(), payload)):
            raise _foreign()
        try:
            body = json.loads(payload)
        except ValueError:
            raise _foreign() from None
        if not isinstance(body, dict):
            raise _foreign()
        if body.get("q") != _fingerprint(query):
            raise InvalidArgument(
                [FieldViolation("page_token", "was issued for a different filter or resource")]
            )
        return body

    # -- (time, id) positions: lists ordered by creation time --------------------------------

    async def encode(self, position: tuple[datetime, uuid.UUID], query: str) -> str:
        """A token for the page after keyset ``position``, valid only with the same ``query``."""
        return await self._seal(
            {"t": position[0].astimezone(UTC).isoformat(), "id": str(position[1])}, query
        )

    async def keyset_page(
        self,
        found: Sequence[T],
        size: int,
        position: Callable[[T], tuple[datetime, uuid.UUID]],
        query: str,
    ) -> tuple[list[T], str]:
        """The page of ``size`` items in ``found`` (read with a limit of ``size + 1``), and the
        token for the page after it: empty when ``found`` held no more."""
        if len(found) <= size:
            return list(found), ""
        page = list(found[:size])
        return page, await self.encode(position(page[-1]), query)

    async def decode(self, token: str, query: str) -> tuple[datetime, uuid.UUID] | None:
        """The keyset position in ``token``; None for an empty token; InvalidArgument if
        foreign."""
        if not token:
            return None
        body = await self._open(token, query)
        t, id_ = body.get("t"), body.get("id")
        if not isinstance(t, str) or not isinstance(id_, str):
            raise _foreign()
        try:
            when = datetime.fromisoformat(t)
            if when.tzinfo is None:
                raise ValueError("naive")
            return when.astimezone(UTC), uuid.UUID(id_)
        except (ValueError, OverflowError):
            raise _foreign() from None

    # -- sequence positions: ordered histories ----------------------------------------------

    async def encode_offset(self, position: int, query: str) -> str:
        """A token for the page after sequence ``position``."""
        return await self._seal({"after": position}, query)

    async def decode_offset(self, token: str, query: str) -> int:
        """The sequence in ``token``; 0 for an empty token; InvalidArgument if foreign."""
        if not token:
            return 0
        position = (await self._open(token, query)).get("after")
        if type(position) is not int or not 0 <= position <= MAX_OFFSET:
            raise _foreign()
        return position

    # -- (name, id) positions: lists ordered by name ----------------------------------------

    async def encode_named(self, position: tuple[str, uuid.UUID], query: str) -> str:
        """A token for the page after (name prefix, id) ``position``."""
        return await self._seal({"name": position[0][:MAX_NAME_KEY], "id": str(position[1])}, query)

    async def decode_named(self, token: str, query: str) -> tuple[str, uuid.UUID] | None:
        if not token:
            return None
        body = await self._open(token, query)
        name, id_ = body.get("name"), body.get("id")
        if not isinstance(name, str) or not isinstance(id_, str) or len(name) > MAX_NAME_KEY:
            raise _foreign()
        try:
            return name, uuid.UUID(id_)
        except ValueError:
            raise _foreign() from None
