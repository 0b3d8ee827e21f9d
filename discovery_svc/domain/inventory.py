"""Assets and dependencies as clients read them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

DEPENDENCY_KINDS: Final = ("runs_on", "depends_on", "uses_database")
"""What a dependency can be (the dependency SQL writes these, discovery_svc.adapters.inventory):
an application runs on its host, a server depends on another, either uses a database."""


@dataclass(frozen=True)
class Asset:
    id: uuid.UUID
    asset_type: str
    display_name: str
    hostname: str | None = None
    domain: str | None = None
    ip_address: str | None = None
    operating_system: str | None = None
    os_family: str | None = None
    os_version: str | None = None
    cpu_cores: int | None = None
    memory_gb: float | None = None
    storage_gb: float | None = None
    environment: str | None = None
    application_name: str | None = None
    owner: str | None = None
    location: str | None = None
    business_criticality: str | None = None
    serial_number: str | None = None
    attributes: dict[str, object] = field(default_factory=dict)
    update_time: datetime | None = None
    source_rows: list[tuple[uuid.UUID, int]] = field(default_factory=list)
    """(import id, row number) pairs the asset was built from."""


@dataclass(frozen=True)
class Dependency:
    id: int
    source: uuid.UUID
    target: uuid.UUID
    kind: str
    source_name: str
    target_name: str
    evidence: str
