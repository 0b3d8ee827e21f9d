"""Transport security of both ports: TLS on the public one, mutual TLS on the internal one."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import grpc

from flowpair_shared import keepalive
from flowpair_shared.settings import ServiceSettings

# Reconnect quickly after a peer restarts: gRPC's default backoff grows to two minutes.
PEER_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    # Spread deliveries over every replica a DNS name resolves to.
    ("grpc.lb_policy_name", "round_robin"),
    *keepalive.CLIENT_OPTIONS,
)


def _read(path: str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise SystemExit(f"{setting}: cannot read {path}: {error.strerror}") from None


def is_loopback(listen: str) -> bool:
    """Whether ``host:port`` binds only the loopback interface."""
    return is_loopback_host(listen.rsplit(":", 1)[0].strip("[]"))


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an IP address) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name, "", "0.0.0.0" or "[::]": reachable from elsewhere


def public_credentials(svc: ServiceSettings) -> grpc.ServerCredentials | None:
    """TLS for the public port when a certificate is configured; None means plaintext."""
    prefix = f"FLOWPAIR_{svc.name.upper()}_TLS"
    if not svc.tls_cert_file and not svc.tls_key_file:
        return None
    if not (svc.tls_cert_file and svc.tls_key_file):
        raise SystemExit(f"set both {prefix}_CERT_FILE and {prefix}_KEY_FILE, or neither")
    key = _read(svc.tls_key_file, f"{prefix}_KEY_FILE")
    cert = _read(svc.tls_cert_file, f"{prefix}_CERT_FILE")
    return grpc.ssl_server_credentials([(key, cert)])


def has_internal_tls(svc: ServiceSettings) -> bool:
    files = (svc.internal_ca_file, svc.internal_cert_file, svc.internal_key_file)
    if any(files) and not all(files):
        prefix = f"FLOWPAIR_{svc.name.upper()}_INTERNAL"
        raise SystemExit(
            f"mutual TLS between the services needs FLOWPAIR_INTERNAL_CA_FILE,"
            f" {prefix}_CERT_FILE and {prefix}_KEY_FILE together"
        )
    return all(files)


def _internal_files(svc: ServiceSettings) -> tuple[bytes, bytes, bytes]:
    prefix = f"FLOWPAIR_{svc.name.upper()}_INTERNAL"
    return (
        _read(svc.internal_ca_file, "FLOWPAIR_INTERNAL_CA_FILE"),
        _read(svc.internal_cert_file, f"{prefix}_CERT_FILE"),
        _read(svc.internal_key_file, f"{prefix}_KEY_FILE"),
    )


def internal_server_credentials(svc: ServiceSettings) -> grpc.ServerCredentials:
    """Mutual TLS: a client must present a certificate signed by the internal CA."""
    ca, cert, key = _internal_files(svc)
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=True
    )


def peer_channel(svc: ServiceSettings, *, secure: bool) -> grpc.aio.Channel:
    """The relay's channel to the peer's internal port, presenting this service's certificate
    and accepting only a server certificate issued to the peer's name."""
    target = svc.peer_internal_target
    if not secure:
        return grpc.aio.insecure_channel(target, options=PEER_CHANNEL_OPTIONS)
    ca, cert, key = _internal_files(svc)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )
    options = (*PEER_CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", svc.peer))
    return grpc.aio.secure_channel(target, credentials, options=options)
