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
    url: str, *, pool_size: int = 10, application_name: str = "flowpair"
) -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": application_name}},
    )
