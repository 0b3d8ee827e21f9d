"""Database URLs and engines: one engine per process, asyncpg underneath."""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from flowpair_shared import db_scope

APP_ROLE = "flowpair_app"


def sqlalchemy_url(url: str) -> str:
    """``postgres://`` or ``postgresql://`` → ``postgresql+asyncpg://`` (others unchanged)."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got {url.split(':', 1)[0]}://...")


def asyncpg_dsn(url: str) -> str:
    """The same URL as plain asyncpg wants it (for LISTEN connections)."""
    return "postgresql://" + sqlalchemy_url(url)[len("postgresql+asyncpg://") :]


def app_role_url(url: str, password: str | None = None) -> str:
    """The same server and database as ``url`` (the migrations' owner), as the services' role
    ``flowpair_app``; with ``password`` if given, else the URL's own."""
    parts = urlsplit(url)
    _, _, userinfo_host = parts.netloc.rpartition("@")
    secret = quote(password, safe="") if password is not None else parts.password
    netloc = APP_ROLE + (f":{secret}" if secret is not None else "") + "@" + userinfo_host
    return urlunsplit(parts._replace(netloc=netloc))


def create_engine(
    url: str, *, pool_size: int = 20, application_name: str = "flowpair"
) -> AsyncEngine:
    engine = create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        # Overflow connections are closed on check-in: under steady load that means a new
        # PostgreSQL backend per transaction. A fixed pool queues instead.
        max_overflow=0,
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": application_name}},
    )
    db_scope.install(engine)  # every transaction is scoped to its tenant (row-level security)
    return engine
