"""Alembic environment: async; the URL is the config's sqlalchemy.url (set by `make migrate`),
else FLOWPAIR_MIGRATION_DATABASE_URL, else DATABASE_URL.

Migrations run as the schema owner (they create tables, policies and the services' role
``flowpair_app``); the services connect as ``flowpair_app``. With one environment for both,
set DATABASE_URL to the services' URL and FLOWPAIR_MIGRATION_DATABASE_URL to the owner's.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from flowpair_shared.db import sqlalchemy_url

config = context.config


def _url() -> str:
    url = (
        config.get_main_option("sqlalchemy.url")
        or os.environ.get("FLOWPAIR_MIGRATION_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
    )
    if not url:
        raise SystemExit("FLOWPAIR_MIGRATION_DATABASE_URL (or DATABASE_URL) is not set")
    return sqlalchemy_url(url)


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


async def _run() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as conn:
        await conn.run_sync(_migrate)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run())
