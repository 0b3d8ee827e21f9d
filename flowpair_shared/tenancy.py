"""The tenant of the current RPC: parsed once from metadata, carried in a contextvar."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from flowpair_shared.errors import Validator
from flowpair_shared.names import uuid_or_problem

CLIENT_ACCOUNT_HEADER = "x-client-account-id"
ENGAGEMENT_HEADER = "x-engagement-id"
USER_HEADER = "x-user-id"
TENANT_HEADERS = (CLIENT_ACCOUNT_HEADER, ENGAGEMENT_HEADER, USER_HEADER)


@dataclass(frozen=True)
class Tenant:
    """Who is calling: every query is scoped to the client account and engagement."""

    client_account_id: uuid.UUID
    engagement_id: uuid.UUID
    user_id: uuid.UUID

    def metadata(self) -> dict[str, str]:
        """The metadata that carries this tenant to another service."""
        return {
            CLIENT_ACCOUNT_HEADER: str(self.client_account_id),
            ENGAGEMENT_HEADER: str(self.engagement_id),
            USER_HEADER: str(self.user_id),
        }


_current: contextvars.ContextVar[Tenant] = contextvars.ContextVar("flowpair_tenant")


def metadata_values(metadata: Iterable[tuple[str, str | bytes]] | None, key: str) -> list[str]:
    """Every value sent for ``key``, as text (undecodable bytes replaced, never raised)."""
    return [
        value.decode(errors="replace") if isinstance(value, bytes) else value
        for k, value in metadata or ()
        if k == key
    ]


def tenant_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> Tenant:
    """Parse the three tenant headers; raise InvalidArgument naming each missing/bad one.

    Each header must be sent exactly once (a repeated header is refused even with equal
    values: which copy a proxy or another reader would take is not defined) and hold a UUID
    under ``names.uuid_or_problem`` (canonical form, RFC 4122, not nil or max)."""
    pairs = list(metadata or ())
    v = Validator()
    values: dict[str, uuid.UUID] = {}
    for header in TENANT_HEADERS:
        sent = metadata_values(pairs, header)
        if len(sent) > 1:
            v.add(f"metadata.{header}", f"must be sent once, got {len(sent)} times")
            continue
        if not sent or sent[0] == "":
            v.add(f"metadata.{header}", "is required (a UUID)")
            continue
        parsed = uuid_or_problem(sent[0])
        if isinstance(parsed, str):
            v.add(f"metadata.{header}", parsed)
        else:
            values[header] = parsed
    v.raise_if_any()
    return Tenant(values[CLIENT_ACCOUNT_HEADER], values[ENGAGEMENT_HEADER], values[USER_HEADER])


def reset(token: contextvars.Token[Tenant]) -> None:
    """Undo a ``set_current``."""
    _current.reset(token)


def set_current(tenant: Tenant) -> contextvars.Token[Tenant]:
    return _current.set(tenant)


def current() -> Tenant:
    """The tenant of the RPC being served; a LookupError outside one is a wiring bug."""
    return _current.get()
