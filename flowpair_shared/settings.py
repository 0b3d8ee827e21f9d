"""Settings of both services, read once from environment variables (documented in README)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from flowpair_shared import db
from flowpair_shared.outbox.relay import RelaySettings
from flowpair_shared.outbox.retention import DEFAULT_RETENTION_SECONDS, RetentionSettings


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


def _count(env: Mapping[str, str], key: str, default: int) -> int:
    """A whole number, 0 or more."""
    value = _float(env, key, default)
    if value != int(value) or value < 0:
        raise SystemExit(f"{key} must be a whole number, 0 or more, got {value!r}")
    return int(value)


def _positive(env: Mapping[str, str], key: str, default: float) -> float:
    value = _float(env, key, default)
    if not value > 0:
        raise SystemExit(f"{key} must be a positive number of seconds, got {value!r}")
    return value


def _address(env: Mapping[str, str], key: str) -> str:
    """HOST:PORT (port 0: any free one), or empty; refused at start when malformed."""
    value = env.get(key, "")
    host, sep, port = value.rpartition(":")
    if value and not (sep and host and port.isdigit() and int(port) <= 65535):
        raise SystemExit(f"{key} must be HOST:PORT (e.g. 127.0.0.1:9464), got {value!r}")
    return value


def _seconds(env: Mapping[str, str], key: str, default: float) -> float:
    """A duration in seconds, 0 or more (0 turns the limit off where the setting says so)."""
    value = _float(env, key, default)
    if not value >= 0:
        raise SystemExit(f"{key} must be 0 or more seconds, got {value!r}")
    return value


def _flag(env: Mapping[str, str], key: str) -> bool:
    raw = env.get(key, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise SystemExit(f"{key} must be 1 or 0, got {raw!r}")


def _relay(env: Mapping[str, str]) -> RelaySettings:
    delivery_timeout = _float(env, "FLOWPAIR_RELAY_DELIVERY_TIMEOUT_SECONDS", 10.0)
    try:
        return RelaySettings(
            batch_size=_int(env, "FLOWPAIR_RELAY_BATCH_SIZE", 100),
            poll_interval=_float(env, "FLOWPAIR_RELAY_POLL_SECONDS", 2.0),
            max_rejections=_int(env, "FLOWPAIR_RELAY_MAX_REJECTIONS", 8),
            delivery_timeout=delivery_timeout,
            # By default half as long again as a delivery may take, and at least 15 s.
            lease_seconds=_float(
                env, "FLOWPAIR_RELAY_LEASE_SECONDS", max(15.0, 1.5 * delivery_timeout)
            ),
            max_in_flight_batches=_int(env, "FLOWPAIR_RELAY_MAX_IN_FLIGHT_BATCHES", 4),
        )
    except ValueError as error:
        raise SystemExit(f"relay settings: {error}") from None


@dataclass(frozen=True, kw_only=True)
class ServiceSettings:
    """One service's view of the settings: where it listens and which files secure it."""

    name: str
    peer: str
    listen: str
    internal_listen: str
    peer_internal_target: str
    tls_cert_file: str
    tls_key_file: str
    internal_ca_file: str
    internal_cert_file: str
    internal_key_file: str
    metrics_listen: str
    """Where Prometheus scrapes this service (HOST:PORT); empty: no metrics endpoint."""


@dataclass(frozen=True, kw_only=True)
class ReconcileSettings:
    """The orchestrator's reconciler: how often it looks, and what counts as stalled."""

    interval: float = 60.0
    """Seconds between two passes; 0 turns the reconciler off."""
    quiet_seconds: float = 300.0
    """A running flow with no change for this long is diagnosed (and repaired if it can be)."""
    max_requeues: int = 1
    """Times the reconciler re-queues one parked message; an operator may always re-queue."""
    batch: int = 100
    """Flows diagnosed per pass, the longest quiet first."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a flowpair process needs to know about its surroundings."""

    database_url: str
    orchestrator_listen: str = "127.0.0.1:50051"
    discovery_listen: str = "127.0.0.1:50052"
    db_pool_size: int = 20
    shutdown_grace: float = 10.0
    phase_concurrency: int = 4
    phase_lease_seconds: float = 30.0
    phase_workers: int = 2
    """Worker processes running phase jobs; 0 runs them on the serving event loop."""
    phase_stop_grace_seconds: float = 5.0
    """SIGTERM: time a worker's phases get to finish or checkpoint before their leases are
    released."""
    phase_commit_rows: int = 50_000
    """A progressive phase commits (and records where it stands) after this many rows..."""
    phase_commit_seconds: float = 30.0
    """...or this many seconds, whichever comes first."""
    relay: RelaySettings = field(default_factory=RelaySettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    orchestrator_internal_listen: str = "127.0.0.1:50061"
    discovery_internal_listen: str = "127.0.0.1:50062"
    orchestrator_internal_target: str = "127.0.0.1:50061"
    discovery_internal_target: str = "127.0.0.1:50062"
    internal_ca_file: str = ""
    orchestrator_internal_cert_file: str = ""
    orchestrator_internal_key_file: str = ""
    discovery_internal_cert_file: str = ""
    discovery_internal_key_file: str = ""
    orchestrator_tls_cert_file: str = ""
    orchestrator_tls_key_file: str = ""
    discovery_tls_cert_file: str = ""
    discovery_tls_key_file: str = ""
    auth_tokens_file: str = ""
    auth_jwks: str = ""
    auth_jwt_issuer: str = ""
    auth_jwt_audience: str = ""
    allow_insecure: bool = False
    db_statement_timeout: float = db.STATEMENT_TIMEOUT
    db_idle_in_transaction_timeout: float = db.IDLE_IN_TRANSACTION_TIMEOUT
    db_pool_timeout: float = db.POOL_TIMEOUT
    max_concurrent_rpcs: int = 500
    """Calls in flight per port (public, internal) before RESOURCE_EXHAUSTED."""
    max_concurrent_uploads: int = 4
    """Uploads streaming at once per discovery process (each holds a pooled connection)."""
    orchestrator_metrics_listen: str = ""
    discovery_metrics_listen: str = ""
    metrics_interval: float = 10.0
    """Seconds between two reads of the metrics that come from the database."""
    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)

    def service(self, name: str) -> ServiceSettings:
        """The addresses and files of one service (``"orchestrator"`` or ``"discovery"``)."""
        peer = {"orchestrator": "discovery", "discovery": "orchestrator"}[name]
        return ServiceSettings(
            name=name,
            peer=peer,
            listen=getattr(self, f"{name}_listen"),
            internal_listen=getattr(self, f"{name}_internal_listen"),
            peer_internal_target=getattr(self, f"{peer}_internal_target"),
            tls_cert_file=getattr(self, f"{name}_tls_cert_file"),
            tls_key_file=getattr(self, f"{name}_tls_key_file"),
            internal_ca_file=self.internal_ca_file,
            internal_cert_file=getattr(self, f"{name}_internal_cert_file"),
            internal_key_file=getattr(self, f"{name}_internal_key_file"),
            metrics_listen=getattr(self, f"{name}_metrics_listen"),
        )

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
        o_internal = env.get("FLOWPAIR_ORCHESTRATOR_INTERNAL_LISTEN", "127.0.0.1:50061")
        d_internal = env.get("FLOWPAIR_DISCOVERY_INTERNAL_LISTEN", "127.0.0.1:50062")
        files = {
            name: env.get(f"FLOWPAIR_{name.upper()}", "")
            for name in (
                "internal_ca_file",
                "orchestrator_internal_cert_file",
                "orchestrator_internal_key_file",
                "discovery_internal_cert_file",
                "discovery_internal_key_file",
                "orchestrator_tls_cert_file",
                "orchestrator_tls_key_file",
                "discovery_tls_cert_file",
                "discovery_tls_key_file",
                "auth_tokens_file",
                "auth_jwks",
                "auth_jwt_issuer",
                "auth_jwt_audience",
            )
        }
        return cls(
            database_url=url,
            orchestrator_listen=o_listen,
            discovery_listen=d_listen,
            orchestrator_internal_listen=o_internal,
            discovery_internal_listen=d_internal,
            orchestrator_internal_target=env.get(
                "FLOWPAIR_ORCHESTRATOR_INTERNAL_TARGET", o_internal
            ),
            discovery_internal_target=env.get("FLOWPAIR_DISCOVERY_INTERNAL_TARGET", d_internal),
            allow_insecure=_flag(env, "FLOWPAIR_ALLOW_INSECURE"),
            **files,
            db_pool_size=_int(env, "FLOWPAIR_DB_POOL_SIZE", 20),
            shutdown_grace=_float(env, "FLOWPAIR_SHUTDOWN_GRACE_SECONDS", 10.0),
            phase_concurrency=_int(env, "FLOWPAIR_PHASE_CONCURRENCY", 4),
            phase_lease_seconds=_float(env, "FLOWPAIR_PHASE_LEASE_SECONDS", 30.0),
            phase_workers=_count(env, "FLOWPAIR_PHASE_WORKERS", 2),
            phase_stop_grace_seconds=_seconds(env, "FLOWPAIR_PHASE_STOP_GRACE_SECONDS", 5.0),
            phase_commit_rows=_int(env, "FLOWPAIR_PHASE_COMMIT_ROWS", 50_000),
            phase_commit_seconds=_positive(env, "FLOWPAIR_PHASE_COMMIT_SECONDS", 30.0),
            relay=_relay(env),
            retention=RetentionSettings(
                retention_seconds=_positive(
                    env, "FLOWPAIR_RETENTION_SECONDS", DEFAULT_RETENTION_SECONDS
                ),
                interval=_positive(env, "FLOWPAIR_RETENTION_INTERVAL", 60.0),
            ),
            db_statement_timeout=_seconds(
                env, "FLOWPAIR_DB_STATEMENT_TIMEOUT", db.STATEMENT_TIMEOUT
            ),
            db_idle_in_transaction_timeout=_seconds(
                env, "FLOWPAIR_DB_IDLE_IN_TRANSACTION_TIMEOUT", db.IDLE_IN_TRANSACTION_TIMEOUT
            ),
            db_pool_timeout=_seconds(env, "FLOWPAIR_DB_POOL_TIMEOUT_SECONDS", db.POOL_TIMEOUT),
            max_concurrent_rpcs=_int(env, "FLOWPAIR_MAX_CONCURRENT_RPCS", 500),
            max_concurrent_uploads=_int(env, "FLOWPAIR_MAX_CONCURRENT_UPLOADS", 4),
            orchestrator_metrics_listen=_address(env, "FLOWPAIR_ORCHESTRATOR_METRICS_LISTEN"),
            discovery_metrics_listen=_address(env, "FLOWPAIR_DISCOVERY_METRICS_LISTEN"),
            metrics_interval=_positive(env, "FLOWPAIR_METRICS_INTERVAL_SECONDS", 10.0),
            reconcile=ReconcileSettings(
                interval=_seconds(env, "FLOWPAIR_RECONCILE_INTERVAL_SECONDS", 60.0),
                quiet_seconds=_positive(env, "FLOWPAIR_RECONCILE_QUIET_SECONDS", 300.0),
                max_requeues=_count(env, "FLOWPAIR_RECONCILE_MAX_REQUEUES", 1),
            ),
        )
