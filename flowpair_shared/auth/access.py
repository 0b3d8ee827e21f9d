"""Who may call what: the admission step every flowpair RPC passes before its handler.

Public port: a bearer token (tokens file or JWT) names a principal; the method's
``required_role`` (an option in the protos) must be within the principal's role; the tenant
headers must name a client account (and engagement) the principal may act for; ``x-user-id``
is the principal's, never the caller's say. Internal port: the peer's certificate (mutual TLS)
must name the one service allowed to call; the tenant headers it sends are trusted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from flowpair.v1 import access_pb2
from flowpair_shared import tenancy
from flowpair_shared.auth.jwt_verifier import JwtVerifier
from flowpair_shared.auth.principal import Principal, Role
from flowpair_shared.auth.token_file import TokenFile
from flowpair_shared.errors import (
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
    Unauthenticated,
)
from flowpair_shared.outbox.batch import BATCH_METHOD
from flowpair_shared.tenancy import USER_HEADER, Tenant, metadata_values

log = logging.getLogger("flowpair.auth")
AUTHORIZATION_HEADER = "authorization"
Metadata = Sequence[tuple[str, str | bytes]]


class Access(Protocol):
    """Admits one call (returning its tenant) or raises a DomainError saying why not."""

    async def admit(
        self, method: str, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Tenant | None: ...


def method_roles(services: Iterable[ServiceDescriptor]) -> dict[str, Role | None]:
    """``/pkg.Service/Method`` → the least role the protos require (None: no option set)."""
    roles: dict[str, Role | None] = {}
    for service in services:
        for method in service.methods:
            number = method.GetOptions().Extensions[access_pb2.required_role]
            roles[f"/{service.full_name}/{method.name}"] = Role(number) if number else None
    return roles


def bearer_token(metadata: Metadata) -> str:
    values = metadata_values(metadata, AUTHORIZATION_HEADER)
    if not values:
        raise Unauthenticated("missing `authorization: Bearer <token>` metadata")
    if len(values) > 1:
        raise Unauthenticated("send `authorization` metadata once")
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("`authorization` must be `Bearer <token>`")
    return token.strip()


class Authenticator:
    """Bearer token → principal, from a tokens file and/or a JWKS (JWTs have two dots)."""

    def __init__(self, tokens: TokenFile | None, jwts: JwtVerifier | None) -> None:
        self._tokens, self._jwts = tokens, jwts

    async def principal(self, token: str) -> Principal:
        if token.count(".") == 2 and self._jwts is not None:
            return await self._jwts.principal(token)
        found = self._tokens.principal(token) if self._tokens is not None else None
        if found is None:
            raise Unauthenticated("unknown or revoked token")
        return found


class PublicAccess:
    """Bearer-token authentication and role/tenant authorization for the public port."""

    def __init__(self, authenticator: Authenticator, roles: Mapping[str, Role | None]) -> None:
        self._authenticator = authenticator
        self._roles = roles

    async def admit(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> Tenant:
        metadata: Metadata = tuple(context.invocation_metadata() or ())
        principal = await self._authenticator.principal(bearer_token(metadata))
        required = self._roles.get(method)
        if required is None:
            raise PermissionDenied(f"{method} is not open to public callers")
        if principal.role < required:
            raise PermissionDenied(
                f"{method.rsplit('/', 1)[-1]} needs the {required.name.lower()} role;"
                f" the token has {principal.role.name.lower()}"
            )
        return admit_principal(principal, metadata)


def admit_principal(principal: Principal, metadata: Metadata) -> Tenant:
    """The tenant of a call by ``principal``: its headers, its user id, its grants."""
    users = metadata_values(metadata, USER_HEADER)
    if len(users) > 1:
        raise InvalidArgument(
            [FieldViolation(f"metadata.{USER_HEADER}", "must be sent at most once")]
        )
    if any(u.strip().lower() != str(principal.user_id) for u in users):
        raise PermissionDenied(f"{USER_HEADER} must be the token's principal or absent")
    others = [(k, v) for k, v in metadata if k != USER_HEADER]
    tenant = tenancy.tenant_from_metadata([*others, (USER_HEADER, str(principal.user_id))])
    if not principal.may_act_for(tenant):
        raise PermissionDenied("the token does not grant this client account or engagement")
    return tenant


class PeerAccess:
    """Mutual TLS on the internal port: only the named peer service may call."""

    def __init__(self, allowed_peer: str) -> None:
        self._allowed = allowed_peer

    async def admit(
        self, method: str, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Tenant | None:
        auth = context.auth_context()
        names = {n.decode(errors="replace") for n in auth.get("x509_common_name", [])}
        if self._allowed not in names:
            raise PermissionDenied(f"only the {self._allowed} service may call {method}")
        if method == BATCH_METHOD:
            return None  # each message of the batch carries its own tenant
        return tenancy.tenant_from_metadata(context.invocation_metadata())


class TrustedHeadersAccess:
    """FLOWPAIR_ALLOW_INSECURE without credentials: the headers are believed (development)."""

    async def admit(
        self, method: str, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Tenant | None:
        if method == BATCH_METHOD:
            return None  # each message of the batch carries its own tenant
        return tenancy.tenant_from_metadata(context.invocation_metadata())
