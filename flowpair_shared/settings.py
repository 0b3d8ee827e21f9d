"""Settings of both services, read once from environment variables (documented in README)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from flowpair_shared.outbox.relay import RelaySettings


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{key} must be a number, got {raw!r}") from None


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    value = _float(env, key, default)
    if value != int(value) or value < 1:
        raise SystemExit(f"{key} must be a positive whole number, got {value!r}")
    return int(value)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a flowpair process needs to know about its surroundings."""

    database_url: str
    orchestrator_listen: str = "127.0.0.1:50051"
    discovery_listen: str = "127.0.0.1:50052"
    orchestrator_target: str = "127.0.0.1:50051"
    discovery_target: str = "127.0.0.1:50052"
    db_pool_size: int = 20
    shutdown_grace: float = 10.0
    phase_concurrency: int = 4
    phase_lease_seconds: float = 30.0
    relay: RelaySettings = field(default_factory=RelaySettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        url = env.get("DATABASE_URL", "")
        if not url:
            raise SystemExit(
                "DATABASE_URL is not set. `make run` starts an embedded PostgreSQL and sets it;"
                " to run a service alone, point DATABASE_URL at a PostgreSQL server."
            )
        o_listen = env.get("FLOWPAIR_ORCHESTRATOR_LISTEN", "127.0.0.1:50051")
        d_listen = env.get("FLOWPAIR_DISCOVERY_LISTEN", "127.0.0.1:50052")
        return cls(
            database_url=url,
            orchestrator_listen=o_listen,
            discovery_listen=d_listen,
            orchestrator_target=env.get("FLOWPAIR_ORCHESTRATOR_TARGET", o_listen),
            discovery_target=env.get("FLOWPAIR_DISCOVERY_TARGET", d_listen),
            db_pool_size=_int(env, "FLOWPAIR_DB_POOL_SIZE", 20),
            shutdown_grace=_float(env, "FLOWPAIR_SHUTDOWN_GRACE_SECONDS", 10.0),
            phase_concurrency=_int(env, "FLOWPAIR_PHASE_CONCURRENCY", 4),
            phase_lease_seconds=_float(env, "FLOWPAIR_PHASE_LEASE_SECONDS", 30.0),
            relay=RelaySettings(
                batch_size=_int(env, "FLOWPAIR_RELAY_BATCH_SIZE", 100),
                poll_interval=_float(env, "FLOWPAIR_RELAY_POLL_SECONDS", 2.0),
                max_rejections=_int(env, "FLOWPAIR_RELAY_MAX_REJECTIONS", 8),
                delivery_timeout=_float(env, "FLOWPAIR_RELAY_DELIVERY_TIMEOUT_SECONDS", 10.0),
            ),
        )
