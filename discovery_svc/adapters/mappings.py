"""SQL for a flow's field mappings and their version/approval."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.domain.mapping_set import FieldMapping, MappingSet, State


async def get(
    conn: AsyncConnection, child_flow_id: uuid.UUID, threshold: float, *, lock: bool = False
) -> MappingSet | None:
    head = (
        await conn.execute(
            text(
                "SELECT version, approved_at IS NOT NULL, waived FROM discovery.mapping_sets"
                " WHERE child_flow_id = :child" + (" FOR UPDATE" if lock else "")
            ),
            {"child": child_flow_id},
        )
    ).first()
    if head is None:
        return None
    rows = await conn.execute(
        text(
            """
            SELECT position, source_column, target_attribute, confidence, reason, state,
                   alternatives, custom_attribute, also_targets, warnings
            FROM discovery.field_mappings WHERE child_flow_id = :child ORDER BY position
            """
        ),
        {"child": child_flow_id},
    )
    mappings = tuple(
        FieldMapping(
            r[0], r[1], r[2], r[3], r[4], State(r[5]), tuple(r[6]), r[7], tuple(r[8]), tuple(r[9])
        )
        for r in rows
    )
    found = MappingSet(mappings, head[0], head[1], threshold, tuple(head[2]))
    # Sets approved before approval marked untouched suggestions APPROVED read as they would
    # now (their stored rows stay as they were written).
    return found.approved_as_is() if found.approved else found


async def save(
    conn: AsyncConnection,
    child_flow_id: uuid.UUID,
    mapping: MappingSet,
    *,
    approved_by: uuid.UUID | None = None,
) -> None:
    """Replace the stored mapping set with ``mapping`` (a re-run or a person's edit)."""
    await conn.execute(
        text(
            """
            INSERT INTO discovery.mapping_sets
              (child_flow_id, version, approved_at, approved_by, waived)
            VALUES (:child, :version, CASE WHEN :approved THEN now() END, :by, :waived)
            ON CONFLICT (child_flow_id) DO UPDATE SET version = EXCLUDED.version,
              approved_at = EXCLUDED.approved_at, approved_by = EXCLUDED.approved_by,
              waived = EXCLUDED.waived
            """
        ),
        {
            "child": child_flow_id,
            "version": mapping.version,
            "approved": mapping.approved,
            "by": approved_by,
            "waived": list(mapping.waived),
        },
    )
    await conn.execute(
        text("DELETE FROM discovery.field_mappings WHERE child_flow_id = :child"),
        {"child": child_flow_id},
    )
    await conn.execute(
        text(
            """
            INSERT INTO discovery.field_mappings
              (child_flow_id, position, source_column, target_attribute, confidence, reason,
               state, alternatives, custom_attribute, also_targets, warnings)
            VALUES (:child, :position, :source, :target, :confidence, :reason, :state,
                    :alternatives, :custom, :also, :warnings)
            """
        ),
        [
            {
                "child": child_flow_id,
                "position": m.position,
                "source": m.source_column,
                "target": m.target_attribute,
                "confidence": m.confidence,
                "reason": m.reason,
                "state": m.state.value,
                "alternatives": list(m.alternatives),
                "custom": m.custom_attribute,
                "also": list(m.also_targets),
                "warnings": list(m.warnings),
            }
            for m in mapping.mappings
        ],
    )
