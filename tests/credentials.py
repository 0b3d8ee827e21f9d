"""Test credentials, made once per test process: the internal CA and mTLS certificates, a
rogue CA (same names, other issuer), a JWT signing key with its JWKS file, and a tokens file."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from flowpair_shared import devcerts
from flowpair_shared.auth.jwt_verifier import ACCOUNTS_CLAIM, ROLE_CLAIM
from flowpair_shared.auth.principal import Role
from flowpair_shared.auth.token_file import new_token, token_entry
from flowpair_shared.tenancy import Tenant

ISSUER = "https://issuer.flowpair.test"
AUDIENCE = "flowpair-test"
KEY_ID = "test-key-1"


@dataclass(frozen=True)
class Credentials:
    dir: Path
    settings: dict[str, Any]
    """Settings fields (keyword arguments of ``Settings``)."""
    env: dict[str, str]
    """The same as environment variables, for services in their own processes."""
    signing_key: ec.EllipticCurvePrivateKey
    rogue_dir: Path
    """A second CA with certificates of the same names: trusted by nobody."""
    tokens: dict[str, Tenant]
    """Opaque tokens in the tokens file → the tenant each may act for (role in its name)."""


@functools.cache
def credentials() -> Credentials:
    root = Path(tempfile.mkdtemp(prefix="flowpair-test-creds-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    env = devcerts.ensure_internal(root / "certs")
    rogue = root / "rogue"
    devcerts.ensure_internal(rogue)
    key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwks = root / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**public, "kid": KEY_ID, "alg": "ES256", "use": "sig"}]}))
    tokens: dict[str, Tenant] = {}
    entries = []
    for role in Role:
        tenant = Tenant(uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
        token = new_token()
        tokens[f"{role.name.lower()}:{token}"] = tenant
        entries.append(
            token_entry(
                token,
                user_id=tenant.user_id,
                role=role,
                client_accounts=[str(tenant.client_account_id)],
                name=role.name.lower(),
            )
        )
    tokens_file = root / "tokens.json"
    tokens_file.write_text(json.dumps({"tokens": entries}))
    env |= {
        "FLOWPAIR_AUTH_JWKS": str(jwks),
        "FLOWPAIR_AUTH_JWT_ISSUER": ISSUER,
        "FLOWPAIR_AUTH_JWT_AUDIENCE": AUDIENCE,
        "FLOWPAIR_AUTH_TOKENS_FILE": str(tokens_file),
    }
    settings = {k.removeprefix("FLOWPAIR_").lower(): v for k, v in env.items()}
    return Credentials(root, settings, env, key, rogue, tokens)


def sign(claims: dict[str, Any], *, key: ec.EllipticCurvePrivateKey | None = None) -> str:
    signing_key = key or credentials().signing_key
    return jwt.encode(claims, signing_key, algorithm="ES256", headers={"kid": KEY_ID})


def claims_for(tenant: Tenant, role: Role, *, lifetime: float = 3600.0) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(tenant.user_id),
        "iat": now,
        "exp": now + int(lifetime),
        ROLE_CLAIM: role.name.lower(),
        ACCOUNTS_CLAIM: [str(tenant.client_account_id)],
    }


@functools.cache
def bearer(tenant: Tenant, role: Role = Role.OPERATOR) -> str:
    """A JWT for ``tenant``'s user, acting for its client account with ``role``."""
    return sign(claims_for(tenant, role))


def opaque_token(role: Role) -> tuple[str, Tenant]:
    """A tokens-file token with ``role`` and the tenant it may act for."""
    for name, tenant in credentials().tokens.items():
        prefix, _, token = name.partition(":")
        if prefix == role.name.lower():
            return token, tenant
    raise LookupError(role)


def internal_channel(
    port: int, server: str, as_peer: str, *, certs: Path | None = None
) -> grpc.aio.Channel:
    """A channel to ``server``'s internal port presenting ``as_peer``'s certificate (from
    ``certs``, by default the trusted test CA's)."""
    folder = certs or credentials().dir / "certs"
    creds = grpc.ssl_channel_credentials(
        root_certificates=(credentials().dir / "certs" / "ca.pem").read_bytes(),
        private_key=(folder / f"{as_peer}-internal-key.pem").read_bytes(),
        certificate_chain=(folder / f"{as_peer}-internal.pem").read_bytes(),
    )
    return grpc.aio.secure_channel(
        f"127.0.0.1:{port}", creds, options=(("grpc.ssl_target_name_override", server),)
    )
