"""An uploaded import, as the discovery service knows it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from discovery_svc.domain.csv_stream import Quarantined

QUARANTINE_SHOWN = 100
"""How many quarantined rows an import lists (all are stored)."""


@dataclass(frozen=True)
class ImportSummary:
    id: uuid.UUID
    """The id clients see and may choose; unique within the tenant only."""
    storage_id: uuid.UUID
    """The server's key of the import's raw and quarantined rows; unique, never shown."""
    file_name: str
    columns: list[str]
    delimiter: str
    had_bom: bool
    row_count: int
    quarantined_count: int
    byte_count: int
    create_time: datetime | None = None
    quarantined: list[Quarantined] = field(default_factory=list)
    """The first QUARANTINE_SHOWN quarantined rows, in file order."""
