"""UploadImportData: a streamed CSV becomes an import in one transaction, all or nothing."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from discovery_svc.adapters import imports
from discovery_svc.domain.csv_stream import CsvFormatError, CsvStreamParser, Quarantined, RowBlock
from discovery_svc.domain.imports import QUARANTINE_SHOWN, ImportSummary
from flowpair_shared import logs
from flowpair_shared.errors import (
    AlreadyExists,
    FieldViolation,
    InvalidArgument,
    ResourceExhausted,
)
from flowpair_shared.tenancy import Tenant

log = logging.getLogger("flowpair.discovery.upload")


@dataclass(frozen=True, kw_only=True)
class UploadRequest:
    import_id: uuid.UUID | None
    file_name: str


class UploadSlots:
    """At most ``limit`` uploads stream at once; one more is refused RESOURCE_EXHAUSTED at once
    rather than queued.

    An upload holds a pooled connection (and its transaction) for as long as the client keeps
    sending, so uploads without a bound could take every connection of the pool and leave the
    unary calls nothing but timeouts. With ``limit`` below the pool size (FLOWPAIR_DB_POOL_SIZE)
    the other calls always have the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.busy = 0

    @contextlib.contextmanager
    def take(self) -> Iterator[None]:
        if self.busy >= self.limit:
            raise ResourceExhausted(
                f"this service already receives {self.limit} uploads at once"
                " (FLOWPAIR_MAX_CONCURRENT_UPLOADS); retry with backoff",
                reason="TOO_MANY_UPLOADS",
            )
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1


def _refuse(description: str) -> InvalidArgument:
    return InvalidArgument([FieldViolation("chunk", description)])


async def upload(
    engine: AsyncEngine, tenant: Tenant, request: UploadRequest, chunks: AsyncIterator[bytes]
) -> ImportSummary:
    """Parse ``chunks`` as they arrive and store them; commit only a complete, valid import.

    The client's import id is unique within its tenant only; the rows are stored under a
    fresh storage id, so nothing about another tenant's imports can show through."""
    storage_id = uuid.uuid4()
    import_id = request.import_id or storage_id
    logs.bind(import_id=str(import_id))
    parser = CsvStreamParser()
    shown: list[Quarantined] = []
    byte_count = 0
    async with engine.connect() as conn, conn.begin():
        if await imports.exists(conn, tenant, import_id):
            raise AlreadyExists(f"imports/{import_id} already exists")
        writer = imports.RowWriter(conn, storage_id)

        async def take(blocks: list[RowBlock]) -> None:
            for block in blocks:
                shown.extend(block.quarantined[: QUARANTINE_SHOWN - len(shown)])
                await writer.add(block)

        try:
            async for chunk in chunks:
                byte_count += len(chunk)
                await take(parser.feed_blocks(chunk))
            await take(parser.close_blocks())
        except BaseException as error:
            # Nothing may still run on the connection when it is returned, so the block in
            # flight is waited for; but the upload failed already, and that is its answer.
            with contextlib.suppress(Exception):
                await writer.close()
            if isinstance(error, CsvFormatError):
                raise _refuse(str(error)) from None
            raise
        await writer.close()
        if parser.header is None:
            raise _refuse("the upload is empty: expected a CSV file with a header row")
        if writer.row_count == 0:
            raise _refuse(
                "the file has a header but no importable data rows"
                f" ({writer.quarantined_count} quarantined)"
            )
        summary = await imports.insert(
            conn,
            tenant,
            ImportSummary(
                id=import_id,
                storage_id=storage_id,
                file_name=request.file_name,
                columns=parser.header,
                delimiter=parser.delimiter or ",",
                had_bom=parser.had_bom,
                row_count=writer.row_count,
                quarantined_count=writer.quarantined_count,
                byte_count=byte_count,
                quarantined=shown,
            ),
        )
        if summary is None:
            raise AlreadyExists(f"imports/{import_id} already exists")
    log.info(
        "import uploaded",
        extra={
            "rows": summary.row_count,
            "quarantined": summary.quarantined_count,
            "bytes": byte_count,
        },
    )
    return summary
