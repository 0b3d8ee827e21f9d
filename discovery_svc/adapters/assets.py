"""SQL for reading assets and dependencies, scoped to the tenant's engagement."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.domain.inventory import Asset, Dependency
from flowpair_shared.pagination import MAX_NAME_KEY
from flowpair_shared.tenancy import Tenant

_COLUMNS = """
  a.id, a.asset_type, a.display_name, a.hostname, a.domain, a.ip_address, a.operating_system,
  a.os_family, a.os_version, a.cpu_cores, a.memory_gb, a.storage_gb, a.environment,
  a.application_name, a.owner, a.location, a.business_criticality, a.serial_number,
  a.attributes, a.update_time
"""
_TENANT = "a.client_account_id = :account AND a.engagement_id = :engagement"
NAME_KEY = MAX_NAME_KEY
SOURCES_SHOWN = 100


def _tenant(tenant: Tenant) -> dict[str, Any]:
    return {"account": tenant.client_account_id, "engagement": tenant.engagement_id}


def _asset(row: Any, sources: list[tuple[uuid.UUID, int]] | None = None) -> Asset:
    attributes = row[18]
    if isinstance(attributes, str):
        attributes = json.loads(attributes)
    names = (
        "id",
        "asset_type",
        "display_name",
        "hostname",
        "domain",
        "ip_address",
        "operating_system",
        "os_family",
        "os_version",
        "cpu_cores",
        "memory_gb",
        "storage_gb",
        "environment",
        "application_name",
        "owner",
        "location",
        "business_criticality",
        "serial_number",
    )
    return Asset(
        **dict(zip(names, row[:18], strict=True)),
        attributes=dict(attributes),
        update_time=row[19],
        source_rows=sources or [],
    )


async def list_page(
    conn: AsyncConnection,
    tenant: Tenant,
    *,
    asset_type: str | None,
    environment: str | None,
    after: tuple[str, uuid.UUID] | None,
    limit: int,
) -> tuple[list[Asset], int]:
    where = [_TENANT]
    params: dict[str, Any] = {**_tenant(tenant), "limit": limit}
    if asset_type:
        where.append("a.asset_type = :type")
        params["type"] = asset_type
    if environment:
        where.append("a.environment = :env")
        params["env"] = environment
    total = (
        await conn.execute(
            text(f"SELECT count(*) FROM discovery.assets a WHERE {' AND '.join(where)}"), params
        )
    ).scalar_one()
    # By the first NAME_KEY characters of the name, then id: what the index holds (a whole
    # name can be longer than a B-tree entry) and what a page token carries.
    if after is not None:
        where.append(f"(left(a.display_name, {NAME_KEY}), a.id) > (:after_name, :after_id)")
        params["after_name"], params["after_id"] = after
    rows = await conn.execute(
        text(
            f"SELECT {_COLUMNS} FROM discovery.assets a WHERE {' AND '.join(where)}"
            f" ORDER BY left(a.display_name, {NAME_KEY}), a.id LIMIT :limit"
        ),
        params,
    )
    return [_asset(r) for r in rows], int(total)


async def get(conn: AsyncConnection, tenant: Tenant, asset_id: uuid.UUID) -> Asset | None:
    row = (
        await conn.execute(
            text(f"SELECT {_COLUMNS} FROM discovery.assets a WHERE a.id = :id AND {_TENANT}"),
            {"id": asset_id, **_tenant(tenant)},
        )
    ).first()
    if row is None:
        return None
    sources = await conn.execute(
        text(
            """
            SELECT import_id, row_number FROM discovery.asset_sources WHERE asset_id = :id
            ORDER BY import_id, row_number LIMIT :limit
            """
        ),
        {"id": asset_id, "limit": SOURCES_SHOWN},
    )
    return _asset(row, [(s[0], s[1]) for s in sources])


async def list_dependencies(
    conn: AsyncConnection,
    tenant: Tenant,
    *,
    asset_id: uuid.UUID | None,
    after: int,
    limit: int,
) -> list[Dependency]:
    where = ["d.client_account_id = :account", "d.engagement_id = :engagement", "d.id > :after"]
    params: dict[str, Any] = {**_tenant(tenant), "after": after, "limit": limit}
    if asset_id is not None:
        where.append("(d.source_asset_id = :asset OR d.target_asset_id = :asset)")
        params["asset"] = asset_id
    rows = await conn.execute(
        text(
            f"""
            SELECT d.id, d.source_asset_id, d.target_asset_id, d.kind, s.display_name,
                   t.display_name, d.evidence
            FROM discovery.dependencies d
            JOIN discovery.assets s ON s.id = d.source_asset_id
            JOIN discovery.assets t ON t.id = d.target_asset_id
            WHERE {" AND ".join(where)} ORDER BY d.id LIMIT :limit
            """
        ),
        params,
    )
    return [Dependency(*r) for r in rows]
