"""Opaque bearer tokens from a file that holds only their SHA-256 hashes.

The file (``FLOWPAIR_AUTH_TOKENS_FILE``) is JSON::

    {"tokens": [{"name": "ci-bot", "sha256": "<hex of sha256(token)>",
                 "user_id": "<uuid>", "role": "operator",
                 "client_accounts": ["<uuid>", ...] | ["*"],
                 "engagements": ["<uuid>", ...]}]}        # engagements optional

Tokens are 256-bit random strings, so a plain SHA-256 is enough to make a stolen file useless
(no password stretching needed). The file is re-read when it changes, so tokens can be added
or revoked without a restart; a file that no longer parses keeps the last good contents,
and a deleted file revokes every token.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

from flowpair_shared.auth.principal import Principal, Role, parse_grants
from flowpair_shared.names import uuid_or_problem

log = logging.getLogger("flowpair.auth")
TOKEN_PREFIX = "fp_"
_RECHECK_SECONDS = 1.0


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_entry(
    token: str,
    *,
    user_id: uuid.UUID,
    role: Role,
    client_accounts: list[str],
    engagements: list[str] | None = None,
    name: str = "",
) -> dict[str, Any]:
    """The file entry for ``token`` (the token itself is not in it)."""
    entry: dict[str, Any] = {
        "name": name,
        "sha256": token_hash(token),
        "user_id": str(user_id),
        "role": role.name.lower(),
        "client_accounts": client_accounts,
    }
    if engagements is not None:
        entry["engagements"] = engagements
    return entry


def _user_id(text: str) -> uuid.UUID:
    found = uuid_or_problem(text.lower())
    if isinstance(found, str):
        raise ValueError(f"user_id {found}")
    return found


def parse(text: str, origin: str) -> dict[str, Principal]:
    """Token hash → principal; ValueError naming the entry and field that is wrong."""
    try:
        body = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{origin}: not JSON ({error})") from None
    entries = body.get("tokens") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f'{origin}: expected {{"tokens": [...]}}')
    found: dict[str, Principal] = {}
    for i, entry in enumerate(entries):
        where = f"{origin}: tokens[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be an object")
        digest = entry.get("sha256")
        if not isinstance(digest, str) or len(digest) != 64:
            raise ValueError(f"{where}.sha256 must be 64 hex digits")
        try:
            bytes.fromhex(digest)
            user_id = _user_id(str(entry.get("user_id")))
            role = Role.parse(str(entry.get("role", "")))
            accounts = parse_grants(entry.get("client_accounts"), "client_accounts")
            engagements = parse_grants(entry.get("engagements"), "engagements")
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
        if "client_accounts" not in entry:
            raise ValueError(f"{where}.client_accounts is required")
        found[digest.lower()] = Principal(user_id, role, accounts, engagements, "tokens-file")
    return found


class TokenFile:
    """The principals of a tokens file, reloaded when the file changes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._principals: dict[str, Principal] = {}
        self._load(strict=True)

    def _load(self, *, strict: bool) -> None:
        if not strict and not self.path.exists():
            if self._principals:
                log.error(
                    "tokens file is gone: every token is revoked", extra={"path": str(self.path)}
                )
            self._principals, self._stamp = {}, None
            return
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp:
                return
            principals = parse(self.path.read_text(), str(self.path))
        except (OSError, ValueError) as error:
            if strict:
                raise SystemExit(f"FLOWPAIR_AUTH_TOKENS_FILE: {error}") from None
            log.error(
                "tokens file not reloaded; keeping the last good one", extra={"error": str(error)}
            )
            return
        self._principals, self._stamp = principals, stamp
        log.info("tokens file loaded", extra={"path": str(self.path), "tokens": len(principals)})

    def principal(self, token: str) -> Principal | None:
        now = time.monotonic()
        if now - self._checked > _RECHECK_SECONDS:
            self._checked = now
            self._load(strict=False)
        return self._principals.get(token_hash(token))
