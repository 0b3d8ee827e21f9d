"""Resource names (AIP-122) and UUID parsing, with violations collected by a Validator.

One UUID rule for every id a request carries (resource names, client-chosen ids, tenant
headers, message ids): the canonical text form, 8-4-4-4-12 hexadecimal digits in either case,
of an RFC 4122 UUID (variant ``10``, version 1 to 8). Other spellings that ``uuid.UUID``
accepts (braces, ``urn:uuid:``, no hyphens) are refused rather than silently rewritten, and so
are the nil and max UUIDs, which clients send by mistake (an unset field, a placeholder) and
which would otherwise name a resource every such client shares.
"""

from __future__ import annotations

import re
import uuid

from flowpair_shared.errors import Validator
from flowpair_shared.inputs import check_text

FLOWS = "flows"
CHILD_FLOWS = "childFlows"
IMPORTS = "imports"
MESSAGES = "messages"
MAX_DISPLAY_NAME = 200
MAX_REASON = 500


def format_name(collection: str, id_: uuid.UUID) -> str:
    return f"{collection}/{id_}"


_CANONICAL = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def uuid_or_problem(value: str) -> uuid.UUID | str:
    """The UUID ``value`` spells under the rule above, or what is wrong with it."""
    if not _CANONICAL.fullmatch(value):
        return f"must be a UUID (8-4-4-4-12 hexadecimal digits), got {value[:64]!r}"
    parsed = uuid.UUID(value)
    if parsed.int == 0:
        return "must not be the nil UUID"
    if parsed.int == (1 << 128) - 1:
        return "must not be the max UUID"
    if parsed.variant != uuid.RFC_4122 or not 1 <= (parsed.version or 0) <= 8:
        return f"must be an RFC 4122 UUID (variant 10, version 1 to 8), got {value!r}"
    return parsed


def parse_uuid(value: str, field: str, v: Validator, *, required: bool = True) -> uuid.UUID | None:
    """Parse a UUID (see the module's docstring); record a violation and return None when
    it is not one."""
    if not value:
        if required:
            v.add(field, "is required")
        return None
    parsed = uuid_or_problem(value)
    if isinstance(parsed, str):
        v.add(field, parsed)
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
    """A display name: one line of free text (``inputs.check_text``)."""
    check_text(value, field, v, max_length=MAX_DISPLAY_NAME)


def check_reason(value: str, field: str, v: Validator) -> None:
    """Why a person did something: free text that may span lines (``inputs.check_text``)."""
    check_text(value, field, v, max_length=MAX_REASON, multiline=True)
