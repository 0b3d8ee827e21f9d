"""A container health probe: exit 0 when a service's public port answers the standard gRPC
health check (grpc.health.v1) SERVING, 1 otherwise (not listening, NOT_SERVING, TLS refused,
too slow). A service reports SERVING only once its database role has passed its check.

    python -m flowpair_shared.healthcheck orchestrator --ca-file /credentials/public-ca.pem

The probe reads the service's own settings from the environment it shares with the service
(a container's): the public listen address, and the TLS certificate that says whether the
port has TLS and which name to expect on it. It needs only the runtime dependencies.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVICES = ("orchestrator", "discovery")
# Settings.from_env's defaults, repeated because importing the settings (SQLAlchemy with
# them) would make each probe several times slower; tests/test_container_files.py holds the
# two in agreement.
DEFAULT_LISTEN = {"orchestrator": "127.0.0.1:50051", "discovery": "127.0.0.1:50052"}

# Docker reads 0 as healthy and 1 as unhealthy; 2 is reserved, so argparse's 2 is not used.
HEALTHY, UNHEALTHY = 0, 1


def listen_variable(service: str) -> str:
    return f"FLOWPAIR_{service.upper()}_LISTEN"


def tls_cert_variable(service: str) -> str:
    return f"FLOWPAIR_{service.upper()}_TLS_CERT_FILE"


def target(listen: str) -> str:
    """Where to reach a server listening on ``listen`` from the same host: a wildcard
    address (every interface) is reached on loopback."""
    host, _, port = listen.rpartition(":")
    bare = host.strip("[]")
    if bare in ("", "0.0.0.0"):
        return f"127.0.0.1:{port}"
    if bare == "::":
        return f"[::1]:{port}"
    return listen


def certificate_name(cert_file: str) -> str:
    """The first name (DNS, else IP) the certificate is issued for: what a client reaching
    the port by any other name (here loopback) must ask to verify."""
    from cryptography import x509  # only with TLS, so the plaintext probe stays light

    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])
    for kind in (x509.DNSName, x509.IPAddress):
        names = san.get_values_for_type(kind)
        if names:
            return str(names[0])
    raise ValueError(f"{cert_file} names no DNS name or IP address to verify")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m flowpair_shared.healthcheck",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("service", choices=SERVICES, help="whose public port to check")
    p.add_argument(
        "--ca-file",
        help="CA of the public port's certificate (default: the system's roots)",
    )
    p.add_argument(
        "--server-name",
        help="name to verify the certificate against (default: its own first name)",
    )
    p.add_argument(
        "--grpc-service",
        default="",
        help="the gRPC service to ask about, e.g. flowpair.v1.OrchestratorService"
        " (default: the whole server)",
    )
    p.add_argument("--timeout", type=float, default=3.0, help="seconds (default: 3)")
    return p


def channel(
    service: str, ca_file: str | None, server_name: str | None, env: Mapping[str, str]
) -> grpc.Channel:
    address = target(env.get(listen_variable(service)) or DEFAULT_LISTEN[service])
    cert_file = env.get(tls_cert_variable(service), "")
    if not cert_file:
        return grpc.insecure_channel(address)
    roots = Path(ca_file).read_bytes() if ca_file else None
    name = server_name or certificate_name(cert_file)
    return grpc.secure_channel(
        address,
        grpc.ssl_channel_credentials(roots),
        options=(("grpc.ssl_target_name_override", name),),
    )


def probe(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        with channel(args.service, args.ca_file, args.server_name, env) as ch:
            stub: Any = health_pb2_grpc.HealthStub(ch)  # its typed stubs name no methods
            response: health_pb2.HealthCheckResponse = stub.Check(
                health_pb2.HealthCheckRequest(service=args.grpc_service), timeout=args.timeout
            )
    except grpc.RpcError as error:
        code = error.code() if isinstance(error, grpc.Call) else None
        details = error.details() if isinstance(error, grpc.Call) else str(error)
        print(f"{args.service}: {code.name if code else 'error'}: {details}", file=sys.stderr)
        return UNHEALTHY
    except (OSError, ValueError) as error:
        print(f"{args.service}: {error}", file=sys.stderr)
        return UNHEALTHY
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(f"{args.service}: {status}")
    return HEALTHY if response.status == health_pb2.HealthCheckResponse.SERVING else UNHEALTHY


def main(argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as done:  # --help (0) or a usage error (argparse's 2)
        return HEALTHY if done.code in (0, None) else UNHEALTHY
    return probe(args, os.environ if env is None else env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
