"""Tenant isolation in PostgreSQL itself: row-level security on every tenant table.

The services connect as ``flowpair_app``, which cannot bypass it; every transaction carries
its tenant in transaction-local settings (``flowpair_shared.db_scope``). Here deliberately
unscoped queries, as that role, see one tenant or nothing at all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from flowpair.v1 import flow_pb2
from flowpair_shared import db_scope, devstack, tenancy
from flowpair_shared.db import APP_ROLE, app_role_url, asyncpg_dsn, create_engine
from flowpair_shared.tenancy import Tenant
from tests.support import Stack, eventually, fetch, fetchval, new_tenant
from tests.test_inventory_rerun import run_flow
from tests.test_phase_engine import wait_status

SCHEMAS = ("orchestrator", "discovery", "messaging")
# The tables without row-level security, and why they need none.
EXCEPTIONS = {
    "public.alembic_version": "migration bookkeeping (one version number); no grant to the app",
    "messaging.secrets": "the page-token signing key; no tenant's data, read-only to the app",
}
# The shared queues background work claims across tenants in db_scope.system().
SYSTEM_SCOPED = {"messaging.outbox", "discovery.phase_jobs"}
# What retention reads, locks and deletes (never writes) across tenants in db_scope.system().
RETAINED = {"messaging.inbox", "messaging.outbox_sequences"}
RETENTION_POLICIES = {
    # For the owner alone: what the reconciler's and the metrics' functions read (0017).
    "orchestrator.flows": ["owner_functions_read", "tenant_isolation"],
    "messaging.inbox": ["system_retention_delete", "system_retention_read", "tenant_isolation"],
    "messaging.outbox_sequences": [
        "system_retention_delete",
        "system_retention_lock",
        "system_retention_read",
        "tenant_isolation",
    ],
}

RAGGED = b"host,ip\nweb01,10.0.0.1\nonly-one-field\nweb02,10.0.0.2\n"


async def secured_tables(url: str) -> list[str]:
    rows = await fetch(
        url,
        """
        SELECT n.nspname || '.' || c.relname FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1) ORDER BY 1
        """,
        list(SCHEMAS),
    )
    return [r[0] for r in rows if r[0] not in EXCEPTIONS]


async def as_app(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(asyncpg_dsn(app_role_url(url)))


async def scoped(conn: asyncpg.Connection, account: object, engagement: object, scope: str) -> None:
    await conn.execute(
        "SELECT set_config('flowpair.client_account_id', $1, true),"
        " set_config('flowpair.engagement_id', $2, true), set_config('flowpair.scope', $3, true)",
        str(account or ""),
        str(engagement or ""),
        scope,
    )


async def attempt(
    conn: asyncpg.Connection, tenant: Tenant | None, statement: str, *args: object
) -> None:
    """Run one statement in its own transaction, as ``tenant`` (None: no tenant set)."""
    async with conn.transaction():
        if tenant is not None:
            await scoped(conn, tenant.client_account_id, tenant.engagement_id, "tenant")
        await conn.execute(statement, *args)


async def attempt_as_system(conn: asyncpg.Connection, statement: str) -> None:
    async with conn.transaction():
        await scoped(conn, None, None, "system")
        await conn.execute(statement)


async def tenants_seen(conn: asyncpg.Connection, table: str) -> dict[tuple[Any, Any], int]:
    # Deliberately unscoped: no WHERE at all.
    rows = await conn.fetch(
        f"SELECT client_account_id, engagement_id, count(*) FROM {table} GROUP BY 1, 2"
    )
    return {(r[0], r[1]): r[2] for r in rows}


@pytest.fixture
async def two_tenants(stack: Stack) -> tuple[Stack, Tenant, Tenant]:
    """Two tenants, each with a flow run to COMPLETED through the real services and an
    upload with a quarantined row, so every tenant table has rows of both."""
    await stack.start_orchestrator()
    await stack.start_discovery()
    a, b = new_tenant(), new_tenant()
    names = await asyncio.gather(run_flow(stack, a), run_flow(stack, b))
    for tenant, name in zip((a, b), names, strict=True):
        await stack.upload(tenant, RAGGED)
        await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_COMPLETED, timeout=120)

    async def delivered() -> bool:
        pending = await fetchval(
            stack.database_url, "SELECT count(*) FROM messaging.outbox WHERE delivered_at IS NULL"
        )
        return bool(pending == 0)

    await eventually(delivered)
    return stack, a, b


async def test_unscoped_queries_see_one_tenant_or_nothing(
    two_tenants: tuple[Stack, Tenant, Tenant],
) -> None:
    stack, a, b = two_tenants
    url = stack.database_url
    tables = await secured_tables(url)
    key_a = (a.client_account_id, a.engagement_id)
    key_b = (b.client_account_id, b.engagement_id)

    # As the owner (a superuser: not bound): both tenants have rows in every table.
    owner = await asyncpg.connect(asyncpg_dsn(url))
    try:
        everything = {t: await tenants_seen(owner, t) for t in tables}
    finally:
        await owner.close()
    for table, seen in everything.items():
        assert set(seen) == {key_a, key_b}, (table, seen)

    app = await as_app(url)
    try:
        for table in tables:
            async with app.transaction():
                await scoped(app, a.client_account_id, a.engagement_id, "tenant")
                assert await tenants_seen(app, table) == {key_a: everything[table][key_a]}, table
            # Nothing set: nothing seen.
            async with app.transaction():
                assert await tenants_seen(app, table) == {}, table
            assert await tenants_seen(app, table) == {}, table
            # The same client account, another engagement: another tenant.
            async with app.transaction():
                await scoped(app, a.client_account_id, uuid.uuid4(), "tenant")
                assert await tenants_seen(app, table) == {}, table
            # The system scope reaches only the shared queues and what retention deletes.
            async with app.transaction():
                await scoped(app, None, None, "system")
                expected = everything[table] if table in SYSTEM_SCOPED | RETAINED else {}
                assert await tenants_seen(app, table) == expected, table

        # Changing or deleting another tenant's rows reaches nothing; writing them is refused.
        flow_b = await fetchval(
            url,
            "SELECT id FROM orchestrator.flows WHERE client_account_id = $1",
            b.client_account_id,
        )
        async with app.transaction():
            await scoped(app, a.client_account_id, a.engagement_id, "tenant")
            unscoped = await app.execute("UPDATE orchestrator.flows SET display_name = 'renamed'")
            assert unscoped == f"UPDATE {everything['orchestrator.flows'][key_a]}"
            assert await app.execute("DELETE FROM orchestrator.flows WHERE id = $1", flow_b) == (
                "DELETE 0"
            )
            assert await app.execute("DELETE FROM discovery.raw_records") == (
                f"DELETE {everything['discovery.raw_records'][key_a]}"
            )
        for statement, args in (
            (
                "INSERT INTO orchestrator.flows (id, client_account_id, engagement_id, create_user,"
                " flow_type, status, current_phase) VALUES ($1, $2, $3, $1, 1, 1, 1)",
                (uuid.uuid4(), b.client_account_id, b.engagement_id),
            ),
            (
                "INSERT INTO discovery.raw_records (import_id, row_number, line_number, values,"
                " client_account_id, engagement_id) VALUES ($1, 1, 1, '{}', $2, $3)",
                (uuid.uuid4(), b.client_account_id, b.engagement_id),
            ),
            (
                "UPDATE orchestrator.flow_events SET client_account_id = $1",
                (b.client_account_id,),
            ),
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
                await attempt(app, a, statement, *args)
        # Retention's reach in the system scope stops at reading, locking and deleting.
        for statement in (
            "UPDATE messaging.outbox_sequences SET last_seq = 0",
            "INSERT INTO messaging.inbox (consumer, message_id, client_account_id,"
            f" engagement_id) VALUES ('x', gen_random_uuid(), '{b.client_account_id}',"
            f" '{b.engagement_id}')",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
                await attempt_as_system(app, statement)
        # Without a tenant nothing can be written either.
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await attempt(
                app,
                None,
                "INSERT INTO messaging.inbox (consumer, message_id) VALUES ('x', $1)",
                uuid.uuid4(),
            )
    finally:
        await app.close()
    assert (
        await fetchval(url, "SELECT display_name FROM orchestrator.flows WHERE id = $1", flow_b)
        != "renamed"
    )
    assert not await fetchval(
        url,
        "SELECT count(*) FROM discovery.raw_records WHERE client_account_id = $1",
        a.client_account_id,
    )
    assert (
        await fetchval(
            url,
            "SELECT count(*) FROM discovery.raw_records WHERE client_account_id = $1",
            b.client_account_id,
        )
        == everything["discovery.raw_records"][key_b]
    )

    # The services' own path: the engine sets the context's tenant at every transaction begin.
    engine = create_engine(app_role_url(url), pool_size=2)
    flows = text("SELECT client_account_id FROM orchestrator.flows")
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(flows)).all() == []
        with db_scope.tenant(b):
            async with engine.connect() as conn:
                assert {r[0] for r in await conn.execute(flows)} == {b.client_account_id}
        token = tenancy.set_current(a)  # as the interceptor does for an RPC
        try:
            async with engine.connect() as conn:
                assert {r[0] for r in await conn.execute(flows)} == {a.client_account_id}
            with db_scope.tenant(b):  # an explicit scope wins over the RPC's
                async with engine.connect() as conn:
                    assert {r[0] for r in await conn.execute(flows)} == {b.client_account_id}
        finally:
            tenancy._current.reset(token)
        with db_scope.system():
            async with engine.connect() as conn:
                assert (await conn.execute(flows)).all() == []
    finally:
        await engine.dispose()


async def test_every_table_has_forced_row_level_security(database_url: str) -> None:
    rows = await fetch(
        database_url,
        """
        SELECT n.nspname || '.' || c.relname, c.relrowsecurity, c.relforcerowsecurity,
               array(SELECT polname FROM pg_policy WHERE polrelid = c.oid ORDER BY 1),
               array(SELECT attname FROM pg_attribute WHERE attrelid = c.oid AND attnotnull
                     AND attname IN ('client_account_id', 'engagement_id') ORDER BY 1)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
        """,
    )
    assert len(rows) > 15
    for name, enabled, forced, policies, tenant_columns in rows:
        if name in EXCEPTIONS:
            continue
        assert enabled and forced, f"{name} has no (forced) row-level security"
        expected = (
            ["system_scope", "tenant_isolation"] if name in SYSTEM_SCOPED else ["tenant_isolation"]
        )
        assert policies == RETENTION_POLICIES.get(name, expected), name
        assert tenant_columns == ["client_account_id", "engagement_id"], name
    assert set(EXCEPTIONS) <= {r[0] for r in rows}


async def test_the_services_role_cannot_bypass_row_level_security(database_url: str) -> None:
    [role] = await fetch(
        database_url,
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles"
        " WHERE rolname = $1",
        APP_ROLE,
    )
    assert not any(role)
    assert not await fetchval(
        database_url,
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = ANY($1) AND pg_get_userbyid(c.relowner) = $2",
        list(SCHEMAS),
        APP_ROLE,
    ), "the role owns no table (an owner could disable row-level security)"
    assert not await fetchval(
        database_url, "SELECT has_table_privilege($1, 'public.alembic_version', 'SELECT')", APP_ROLE
    )
    # The inventory ANALYZEs the tables it fills; without the right it would be skipped with
    # a warning only, and the planner would take a million fresh rows for none. The role may
    # not ANALYZE itself: one function does it for exactly the tables the inventory fills.
    app = await as_app(database_url)
    warnings: list[str] = []
    app.add_log_listener(lambda _conn, message: warnings.append(str(message)))
    try:
        async with app.transaction():
            await scoped(app, uuid.uuid4(), uuid.uuid4(), "tenant")
            for table in ("cleansed_records", "assets", "asset_sources"):
                await app.execute("SELECT discovery.analyze_fresh($1)", table)
        with pytest.raises(asyncpg.RaiseError, match="not a table the inventory refreshes"):
            await app.execute("SELECT discovery.analyze_fresh('imports')")
    finally:
        await app.close()
    assert warnings == []


async def test_a_service_refuses_a_role_that_bypasses_row_level_security(
    database_url: str,
) -> None:
    from orchestrator_svc.app import build

    # The owner here is a superuser.
    insecure = dataclasses.replace(Stack(database_url).settings(), database_url=database_url)
    app = build(insecure)
    with pytest.raises(SystemExit, match="bypasses row-level security"):
        await app.start()
    for channel in app.channels.values():
        await channel.close()
    await app.engine.dispose()

    app = build(dataclasses.replace(insecure, allow_insecure=True))
    await app.start()
    await app.stop(0)


async def test_migration_backfills_tenants_and_downgrades_cleanly(stack: Stack) -> None:
    url = stack.database_url
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    name = await run_flow(stack, tenant)
    await stack.upload(tenant, RAGGED)
    await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_COMPLETED, timeout=120)
    await stack.close()
    tables = await secured_tables(url)
    before = {t: await fetchval(url, f"SELECT count(*) FROM {t}") for t in tables}
    assert all(before.values()), before

    config = Config(str(devstack.PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    await asyncio.to_thread(command.downgrade, config, "0003")
    assert not await fetchval(
        url,
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = ANY($1) AND (c.relrowsecurity OR c.relforcerowsecurity)",
        list(SCHEMAS),
    )
    assert not await fetchval(url, "SELECT count(*) FROM pg_policy")
    assert not await fetchval(
        url,
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = ANY($1)"
        " AND column_name = 'client_account_id'"
        " AND table_name NOT IN ('flows', 'child_flows', 'imports', 'assets', 'dependencies')",
        list(SCHEMAS),
    )

    await asyncio.to_thread(devstack.migrate, url)
    for table in tables:
        seen = await fetch(
            url, f"SELECT client_account_id, engagement_id, count(*) FROM {table} GROUP BY 1, 2"
        )
        assert [tuple(r) for r in seen] == [
            (tenant.client_account_id, tenant.engagement_id, before[table])
        ], table


async def test_the_cross_tenant_functions_show_ids_and_counts_and_nothing_else(
    database_url: str,
) -> None:
    owner = new_tenant()
    flow_id = uuid.uuid4()
    await fetch(
        database_url,
        "INSERT INTO orchestrator.flows (id, client_account_id, engagement_id, create_user,"
        " flow_type, display_name, status, current_phase, update_time)"
        " VALUES ($1, $2, $3, $4, 1, 'secret name', 2, 2, now() - interval '1 hour')",
        flow_id,
        owner.client_account_id,
        owner.engagement_id,
        owner.user_id,
    )
    [roles] = await fetch(
        database_url,
        "SELECT roles::text[] FROM pg_policies WHERE policyname = 'owner_functions_read'",
    )
    assert APP_ROLE not in roles[0] and "public" not in roles[0]
    app = await asyncpg.connect(asyncpg_dsn(app_role_url(database_url)))
    try:
        # The services' role, in no tenant's scope: no flow row...
        assert await app.fetchval("SELECT count(*) FROM orchestrator.flows") == 0
        # ...but the quiet flow's id and tenant, and the count by status.
        quiet = await app.fetch("SELECT * FROM orchestrator.stalled_flows(60, NULL, NULL, 10)")
        assert [(r["id"], r["engagement_id"]) for r in quiet] == [(flow_id, owner.engagement_id)]
        shown = {"id", "client_account_id", "engagement_id", "create_user", "update_time"}
        assert set(quiet[0].keys()) == shown
        counts = await app.fetch("SELECT * FROM orchestrator.flow_counts()")
        assert [(r["status"], r["flows"]) for r in counts] == [(2, 1)]
        # Bounded whatever is asked: no quiet time below a second, no page above 1000.
        assert await app.fetch("SELECT * FROM orchestrator.stalled_flows(-1, NULL, NULL, 10)")
    finally:
        await app.close()
