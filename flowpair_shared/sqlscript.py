"""Splitting a migration's SQL script: asyncpg prepares each statement on its own."""

from __future__ import annotations


def statements(script: str) -> list[str]:
    """The statements of ``script``, which ends each one with ``;`` at the end of a line."""
    return [s for s in script.split(";\n") if s.strip()]
