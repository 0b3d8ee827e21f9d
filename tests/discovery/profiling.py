"""Profiles computed in Python from CSV text, so mapping rules are tested without a database.

The service counts in SQL (``adapters/profiles.py``); this builds the same ``ColumnCounts``
from the same patterns, which is all ``build_profile`` needs.
"""

from __future__ import annotations

import csv
import io
from collections import Counter

from discovery_svc.domain.patterns import ValueKind, classify
from discovery_svc.domain.profile import ColumnCounts, ColumnProfile, DataProfile, build_profile


def profile_csv(text: str) -> list[ColumnProfile]:
    """The column profiles of a CSV text."""
    return data_profile(text).columns


def data_profile(text: str) -> DataProfile:
    """The whole profile of a CSV text, flags included."""
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    counts: list[ColumnCounts] = []
    for i, name in enumerate(header):
        values = [r[i] if i < len(r) else "" for r in body]
        filled = [v for v in values if v.strip()]
        matches: Counter[ValueKind] = Counter()
        for v in filled:
            matches.update(classify(v))
        seen = Counter(filled)
        counts.append(
            ColumnCounts(
                position=i + 1,
                name=name,
                empty=len(values) - len(filled),
                distinct=len(seen),
                padded=sum(1 for v in filled if v != v.strip()),
                matches=dict(matches),
                samples=list(seen)[:5],
                duplicate_values=sum(1 for n in seen.values() if n > 1),
                duplicate_rows=sum(n for n in seen.values() if n > 1),
                duplicate_examples=[v for v, n in seen.items() if n > 1][:3],
            )
        )
    return build_profile(
        import_id="i", master_flow_id="m", row_count=len(body), quarantined_count=0, counts=counts
    )
