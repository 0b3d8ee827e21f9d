"""Vocabularies as data: the words and patterns the cleanser and the mapper recognise.

One JSON file per vocabulary, shipped with the package (``pyproject.toml`` package-data), so
a user can read and extend them without reading code. :func:`load` parses a file once.
Files: ``placeholders`` (cell values and names), ``units``, ``plausibility``, ``environments``,
``criticalities``, ``asset_types``, ``operating_systems``, ``header_synonyms``.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["load"]


@cache
def load(name: str) -> Any:
    """The parsed contents of ``<name>.json`` in this package (cached; do not mutate)."""
    return json.loads(resources.files(__name__).joinpath(f"{name}.json").read_text("utf-8"))
