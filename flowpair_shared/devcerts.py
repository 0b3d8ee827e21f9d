"""Development certificates: a private CA, the services' internal (mTLS) certificates and,
optionally, public TLS certificates. For loopback development and docker-compose; production
brings its own PKI and points the FLOWPAIR_*_FILE settings at it.

    python -m flowpair_shared.devcerts DIR                      # CA + internal certificates
    python -m flowpair_shared.devcerts DIR --public-host HOST   # also public certs for HOST
                                                                # (own CA, in DIR/public)
    python -m flowpair_shared.devcerts DIR ... --bundles        # and DIR/<service>/: what
                                                                # each service may hold

Each service certificate names the service in its common name and DNS SAN ("orchestrator",
"discovery"): the internal port admits only its peer's name, and the relay checks the server
it reaches is the peer it meant (``grpc.ssl_target_name_override``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVICES = ("orchestrator", "discovery")
_VALID_DAYS = 825


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "flowpair development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _ca(out: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = out / "ca.pem", out / "ca-key.pem"
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key
    key = _key()
    now = dt.datetime.now(dt.UTC)
    name = _name("flowpair development CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return cert, key


def issue(out: Path, stem: str, common_name: str, hosts: Sequence[str]) -> tuple[Path, Path]:
    """A leaf certificate for ``hosts`` signed by the CA in ``out`` (created if missing);
    kept if it exists. Returns (certificate, key) paths."""
    out.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = out / f"{stem}.pem", out / f"{stem}-key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    ca_cert, ca_key = _ca(out)
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(hosts), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return cert_path, key_path


def ensure_internal(out: Path) -> dict[str, str]:
    """CA and internal certificates in ``out``; the settings (env) that use them."""
    env = {"FLOWPAIR_INTERNAL_CA_FILE": str(out / "ca.pem")}
    for service in SERVICES:
        cert, key = issue(out, f"{service}-internal", service, [service])
        env[f"FLOWPAIR_{service.upper()}_INTERNAL_CERT_FILE"] = str(cert)
        env[f"FLOWPAIR_{service.upper()}_INTERNAL_KEY_FILE"] = str(key)
    return env


def ensure_public(out: Path, hosts: Sequence[str]) -> dict[str, str]:
    """Public TLS certificates for each service, valid for ``hosts``, in ``out/public`` and
    signed by a CA of their own: a public certificate (whose key a load balancer may hold)
    must never pass for a service on the internal, mutual-TLS side."""
    env: dict[str, str] = {}
    for service in SERVICES:
        cert, key = issue(out / "public", f"{service}-public", f"{service} public", hosts)
        env[f"FLOWPAIR_{service.upper()}_TLS_CERT_FILE"] = str(cert)
        env[f"FLOWPAIR_{service.upper()}_TLS_KEY_FILE"] = str(key)
    return env


def bundle(out: Path, service: str) -> Path:
    """``out/<service>/``: only what ``service`` needs (the internal CA certificate, its own
    certificates and keys), to mount into its container. No CA key, no peer's key."""
    folder = out / service
    folder.mkdir(exist_ok=True)
    wanted = ["ca.pem", f"{service}-internal.pem", f"{service}-internal-key.pem"]
    public = [f"public/{service}-public.pem", f"public/{service}-public-key.pem"]
    for name in [*wanted, *(p for p in public if (out / p).exists())]:
        target = folder / Path(name).name
        target.write_bytes((out / name).read_bytes())
        target.chmod((out / name).stat().st_mode & 0o777)
    return folder


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flowpair_shared.devcerts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out", type=Path, help="directory for the PEM files")
    parser.add_argument(
        "--public-host",
        action="append",
        default=[],
        help="also issue public TLS certificates valid for this name/IP",
    )
    parser.add_argument(
        "--bundles",
        action="store_true",
        help="also copy each service's own files into DIR/<service>/",
    )
    args = parser.parse_args(argv)
    env = ensure_internal(args.out)
    if args.public_host:
        env |= ensure_public(args.out, args.public_host)
    if args.bundles:
        for service in SERVICES:
            bundle(args.out, service)
    for key, value in env.items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
