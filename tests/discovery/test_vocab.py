"""The header-synonym vocabulary that mapping.py is to load in place of its own table."""

from __future__ import annotations

import re

from discovery_svc import vocab
from discovery_svc.domain import mapping
from discovery_svc.domain.mapping_set import TARGET_ATTRIBUTES


def test_header_synonyms_cover_the_mappers_table_and_add_the_missing_ones() -> None:
    synonyms = vocab.load("header_synonyms")["synonyms"]
    assert set(synonyms) == set(TARGET_ATTRIBUTES)
    for attribute, phrases in mapping._SYNONYMS.items():
        assert phrases[0] == synonyms[attribute][0]
        assert set(phrases) <= set(synonyms[attribute]), attribute
    added = {
        "owner": {"support group", "assigned to", "managed by"},
        "cpu_cores": {"cpu qty", "cpucount"},
        "hostname": {"hostname fqdn"},
    }
    for attribute, new in added.items():
        assert new <= set(synonyms[attribute]), attribute
    # Phrases are normalised (lower-case words, single spaces), and only the attribute's own
    # name holds a unit word: headers lose theirs before they are compared.
    for phrases in synonyms.values():
        for phrase in phrases:
            assert re.fullmatch(r"[a-z0-9]+(?: [a-z0-9]+)*", phrase), phrase
        for phrase in phrases[1:]:
            assert not {"mb", "gb", "gib", "mib", "tb"} & set(phrase.split()), phrase
