"""Resource names (AIP-122) and UUID parsing, with violations collected by a Validator."""

from __future__ import annotations

import uuid

from flowpair_shared.errors import Validator

FLOWS = "flows"
CHILD_FLOWS = "childFlows"
IMPORTS = "imports"
MAX_DISPLAY_NAME = 200
MAX_REASON = 500


def format_name(collection: str, id_: uuid.UUID) -> str:
    return f"{collection}/{id_}"


def parse_uuid(value: str, field: str, v: Validator, *, required: bool = True) -> uuid.UUID | None:
    """Parse a canonical UUID; record a violation and return None when it is not one."""
    if not value:
        if required:
            v.add(field, "is required")
        return None
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        v.add(field, f"must be a UUID, got {value[:64]!r}")
        return None
    return parsed


def parse_name(
    value: str, collection: str, field: str, v: Validator, *, required: bool = True
) -> uuid.UUID | None:
    """Parse ``{collection}/{uuid}``; record a violation and return None when malformed."""
    if not value:
        if required:
            v.add(field, f"is required, as {collection}/{{uuid}}")
        return None
    prefix, _, rest = value.partition("/")
    if prefix != collection or not rest:
        v.add(field, f"must look like {collection}/{{uuid}}, got {value[:80]!r}")
        return None
    return parse_uuid(rest, field, v)


def check_display_name(value: str, field: str, v: Validator) -> None:
    if len(value) > MAX_DISPLAY_NAME:
        v.add(field, f"must be at most {MAX_DISPLAY_NAME} characters, got {len(value)}")
    if any(ord(c) < 32 for c in value):
        v.add(field, "must not contain control characters")


def check_reason(value: str, field: str, v: Validator) -> None:
    if len(value) > MAX_REASON:
        v.add(field, f"must be at most {MAX_REASON} characters, got {len(value)}")
