"""Session fixtures: one PostgreSQL server, a migrated template, a fresh database per test.

The server is ``FLOWPAIR_TEST_DATABASE_URL`` or ``DATABASE_URL`` when set (any database on it;
tests create their own), else the embedded PostgreSQL in ``.data/pg-test``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from flowpair_shared import devstack
from tests.support import Stack


@pytest.fixture(scope="session")
def admin_url() -> str:
    url = os.environ.get("FLOWPAIR_TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    return url or devstack.embedded_admin_url("pg-test")


@pytest.fixture(scope="session")
async def template_db(admin_url: str) -> AsyncIterator[str]:
    """A database migrated by Alembic (so the migrations are tested on every run)."""
    name = f"flowpair_tmpl_{os.getpid()}"
    await devstack.drop_database(admin_url, name)
    url = await devstack.ensure_database(admin_url, name)
    await asyncio.to_thread(devstack.migrate, url)
    yield name
    await devstack.drop_database(admin_url, name)


@pytest.fixture
async def database_url(admin_url: str, template_db: str) -> AsyncIterator[str]:
    name = f"flowpair_t_{uuid.uuid4().hex[:12]}"
    url = await devstack.ensure_database(admin_url, name, template=template_db)
    yield url
    await devstack.drop_database(admin_url, name)


@pytest.fixture
async def stack(database_url: str) -> AsyncIterator[Stack]:
    s = Stack(database_url)
    yield s
    await s.close()
