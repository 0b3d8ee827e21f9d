"""Database URLs and engines: one engine per process, asyncpg underneath."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def sqlalchemy_url(url: str) -> str:
    """``postgres://`` or ``postgresql://`` → ``postgresql+asyncpg://`` (others unchanged)."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got {url.split(':', 1)[0]}://...")


def asyncpg_dsn(url: str) -> str:
    """The same URL as plain asyncpg wants it (for LISTEN connections)."""
    return "postgresql://" + sqlalchemy_url(url)[len("postgresql+asyncpg://") :]


def create_engine(
    url: str, *, pool_size: int = 20, application_name: str = "flowpair"
) -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        # Overflow connections are closed on check-in: under steady load that means a new
        # PostgreSQL backend per transaction. A fixed pool queues instead.
        max_overflow=0,
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": application_name}},
    )
