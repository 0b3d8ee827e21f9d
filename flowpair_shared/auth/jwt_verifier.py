"""JWT bearer tokens (RS256/ES256) verified against a JWKS file or URL.

Claims: ``iss`` and ``aud`` must match the settings, ``exp`` is required; ``sub`` is the user
(a UUID as is; any other subject becomes a stable UUIDv5 of issuer and subject);
``flowpair_role`` is viewer/operator/admin; ``flowpair_client_accounts`` (list of UUIDs or
``["*"]``) and optional ``flowpair_engagements`` say whom the caller may act for.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import jwt

from flowpair_shared.auth.principal import Principal, Role, parse_grants
from flowpair_shared.errors import Unauthenticated
from flowpair_shared.names import uuid_or_problem
from flowpair_shared.tls import is_loopback_host

log = logging.getLogger("flowpair.auth")

ALGORITHMS = ("RS256", "ES256")
ROLE_CLAIM = "flowpair_role"
ACCOUNTS_CLAIM = "flowpair_client_accounts"
ENGAGEMENTS_CLAIM = "flowpair_engagements"
_LEEWAY_SECONDS = 30
_CACHE_LIMIT = 4096
# A verified token is re-verified at least this often, so a key removed from a JWKS URL
# stops its tokens within a minute (a JWKS file's change clears the cache at once).
_CACHE_SECONDS = 60.0


def _user_id(issuer: str, subject: str) -> uuid.UUID:
    """The subject if it is a UUID flowpair accepts as a user id, else a stable UUIDv5 of
    issuer and subject (so every subject maps to exactly one valid user id)."""
    found = uuid_or_problem(subject.lower())
    if isinstance(found, uuid.UUID):
        return found
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{issuer}#{subject}")


def principal_from_claims(claims: dict[str, Any], issuer: str) -> Principal:
    try:
        role = Role.parse(str(claims.get(ROLE_CLAIM, "")))
        accounts = parse_grants(claims.get(ACCOUNTS_CLAIM), ACCOUNTS_CLAIM)
        engagements = parse_grants(claims.get(ENGAGEMENTS_CLAIM), ENGAGEMENTS_CLAIM)
    except ValueError as error:
        raise Unauthenticated(f"token claims: {error}") from None
    if ACCOUNTS_CLAIM not in claims:
        raise Unauthenticated(f"token claims: {ACCOUNTS_CLAIM} is required")
    return Principal(_user_id(issuer, str(claims["sub"])), role, accounts, engagements, "jwt")


# Messages for clients: what is wrong with the token, never the library's class names.
_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not valid yet"),
    (jwt.InvalidAudienceError, "token audience is not this service"),
    (jwt.InvalidIssuerError, "token issuer is not trusted"),
    (jwt.MissingRequiredClaimError, "token lacks a required claim (exp, iss, aud, sub)"),
    (jwt.InvalidSignatureError, "token signature does not verify"),
    (jwt.PyJWKClientConnectionError, "token signing keys cannot be fetched now; retry later"),
    (jwt.PyJWKClientError, "the token's key id is not in the JWKS"),
    (jwt.DecodeError, "token is not a well-formed JWT"),
)


def _why(error: Exception) -> str:
    for kind, reason in _REASONS:
        if isinstance(error, kind):
            return reason
    return "token rejected"


class JwtVerifier:
    """Verifies a JWT's signature, issuer, audience and lifetime; maps claims to a principal."""

    def __init__(
        self, jwks: str, *, issuer: str, audience: str, allow_insecure: bool = False
    ) -> None:
        if not issuer or not audience:
            raise SystemExit(
                "FLOWPAIR_AUTH_JWKS needs FLOWPAIR_AUTH_JWT_ISSUER and FLOWPAIR_AUTH_JWT_AUDIENCE"
            )
        self.issuer, self.audience = issuer, audience
        self._verified: dict[str, tuple[Principal, float]] = {}
        self._client: jwt.PyJWKClient | None = None
        self._file: Path | None = None
        self._file_keys: jwt.PyJWKSet | None = None
        self._file_stamp: tuple[int, int, int] | None = None
        if jwks.startswith("http://") and not is_loopback_host(
            urllib.parse.urlsplit(jwks).hostname or ""
        ):
            if not allow_insecure:
                raise SystemExit(
                    "FLOWPAIR_AUTH_JWKS: a JWKS over plain http could be swapped in transit;"
                    " use https (or a file), or set FLOWPAIR_ALLOW_INSECURE=1"
                )
            log.warning("INSECURE: JWKS fetched over plain http: %s", jwks)
        if jwks.startswith(("https://", "http://")):
            self._client = jwt.PyJWKClient(jwks, cache_keys=True, lifespan=300, timeout=5)
        else:
            self._file = Path(jwks)
            self._reload_file(strict=True)

    def _reload_file(self, *, strict: bool) -> None:
        assert self._file is not None
        try:
            stat = self._file.stat()
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if stamp != self._file_stamp:
                self._file_keys = jwt.PyJWKSet.from_json(self._file.read_text())
                self._file_stamp = stamp
                self._verified = {}  # a key may have been removed: verify again
        except (OSError, ValueError, jwt.PyJWTError) as error:
            if strict:
                raise SystemExit(f"FLOWPAIR_AUTH_JWKS: {self._file}: {error}") from None

    async def _key(self, token: str, kid: str | None) -> jwt.PyJWK:
        if self._client is not None:
            client = self._client
            return await asyncio.to_thread(client.get_signing_key_from_jwt, token)
        assert self._file_keys is not None
        keys = self._file_keys.keys
        if kid is not None:
            for key in keys:
                if key.key_id == kid:
                    return key
            raise Unauthenticated("the token's key id is not in the JWKS")
        if len(keys) == 1:
            return keys[0]
        raise Unauthenticated("the token has no key id and the JWKS holds several keys")

    async def principal(self, token: str) -> Principal:
        if self._file is not None:
            self._reload_file(strict=False)  # a changed JWKS clears the cache first
        cached = self._verified.get(token)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in ALGORITHMS:
                raise Unauthenticated(f"token algorithm must be one of {', '.join(ALGORITHMS)}")
            key = await self._key(token, header.get("kid"))
            if key.algorithm_name != header["alg"]:
                raise Unauthenticated("token algorithm does not match its key")
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],
                audience=self.audience,
                issuer=self.issuer,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as error:
            raise Unauthenticated(_why(error)) from None
        principal = principal_from_claims(claims, self.issuer)
        if len(self._verified) >= _CACHE_LIMIT:
            self._verified.clear()
        self._verified[token] = (principal, min(float(claims["exp"]), time.time() + _CACHE_SECONDS))
        return principal
