"""Who a public caller is once authenticated, and what they may act for."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

from flowpair_shared.tenancy import Tenant


class Role(enum.IntEnum):
    """A caller's role; each includes the ones before it (numbers as in access.proto)."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @classmethod
    def parse(cls, text: str) -> Role:
        """``"viewer"`` → Role.VIEWER; ValueError naming the choices otherwise."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            choices = ", ".join(r.name.lower() for r in cls)
            raise ValueError(f"unknown role {text!r} (one of {choices})") from None


ANY = "*"
"""In a grant list: every client account (or every engagement of the granted accounts)."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``None`` grants mean every account / engagement."""

    user_id: uuid.UUID
    role: Role
    client_accounts: frozenset[uuid.UUID] | None
    engagements: frozenset[uuid.UUID] | None = None
    source: str = ""
    """Where the identity came from ("tokens-file", "jwt", ...), for logs."""

    def may_act_for(self, tenant: Tenant) -> bool:
        accounts_ok = (
            self.client_accounts is None or tenant.client_account_id in self.client_accounts
        )
        engagements_ok = self.engagements is None or tenant.engagement_id in self.engagements
        return accounts_ok and engagements_ok


def parse_grants(values: object, what: str) -> frozenset[uuid.UUID] | None:
    """A JSON list of UUIDs, or ``["*"]`` for all; ValueError with ``what`` otherwise."""
    if values is None:
        return None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f'{what} must be a list of UUID strings or ["*"]')
    if ANY in values:
        return None
    try:
        grants = frozenset(uuid.UUID(v) for v in values)
    except ValueError:
        raise ValueError(f"{what} must hold UUIDs") from None
    if not grants:
        raise ValueError(f'{what} must not be empty (use ["*"] for every one)')
    return grants
