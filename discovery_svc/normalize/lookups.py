"""Synonym lookups for closed vocabularies: environment and business criticality."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Final

from discovery_svc import vocab
from discovery_svc.normalize.text import CACHE_SIZE, key, present, quote


def table(groups: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """Lookup key of every spelling (and of the canonical name) -> canonical name."""
    out: dict[str, str] = {}
    for canonical, synonyms in groups.items():
        for synonym in (canonical, *synonyms):
            out[key(synonym)] = canonical
    return out


def _find(entries: Mapping[str, str], what: str, raw: str) -> tuple[str | None, str | None]:
    stripped = present(raw)
    if stripped is None:
        return None, None
    canonical = entries.get(key(stripped))
    if canonical is None:
        return None, f"unrecognised {what} {quote(stripped)}"
    return canonical, None


_ENVIRONMENT_VOCAB: Final = vocab.load("environments")["values"]
_CRITICALITY_VOCAB: Final = vocab.load("criticalities")["values"]
_ENVIRONMENTS: Final = table(_ENVIRONMENT_VOCAB)
_CRITICALITIES: Final = table(_CRITICALITY_VOCAB)
ENVIRONMENTS: Final[tuple[str, ...]] = tuple(_ENVIRONMENT_VOCAB)
"""Every canonical environment a cleansed value can be."""
CRITICALITIES: Final[tuple[str, ...]] = tuple(_CRITICALITY_VOCAB)
"""Every canonical business criticality a cleansed value can be."""


# Module-level functions rather than closures: a RowCleanser holding them is pickled by
# reference when the cleansing phase ships it to worker processes.
@lru_cache(maxsize=CACHE_SIZE)
def environment(raw: str) -> tuple[str | None, str | None]:
    return _find(_ENVIRONMENTS, "environment", raw)


@lru_cache(maxsize=CACHE_SIZE)
def criticality(raw: str) -> tuple[str | None, str | None]:
    return _find(_CRITICALITIES, "business criticality", raw)


def normalize_environment(raw: str) -> tuple[str | None, str | None]:
    """Map an environment synonym (``"PRD"``, ``"pre-prod"``, ``"DEVL"``) to its canonical name.

    Canonical names: production, staging, test, development, dr, qa, uat, training, sandbox.
    """
    return environment(raw)


def normalize_criticality(raw: str) -> tuple[str | None, str | None]:
    """Map a criticality (``"Mission critical"``, ``"Tier 2"``, ``"P1"``) to critical/high/...

    Numbers and tiers follow the usual convention that 1 is the most critical (tier 0 too).
    """
    return criticality(raw)
