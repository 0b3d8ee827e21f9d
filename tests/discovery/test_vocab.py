"""The vocabularies the mapper and the cleanser load: header synonyms and placeholders."""

from __future__ import annotations

import re

from discovery_svc import vocab
from discovery_svc.domain import mapping
from discovery_svc.domain.mapping_set import TARGET_ATTRIBUTES


def test_header_synonyms_are_the_mappers_table() -> None:
    synonyms = vocab.load("header_synonyms")["synonyms"]
    assert set(synonyms) == set(TARGET_ATTRIBUTES)
    assert {a: tuple(p) for a, p in synonyms.items()} == mapping._SYNONYMS
    for attribute, phrases in synonyms.items():
        assert phrases[0] == attribute.replace("_", " "), attribute
    # A phrase names one attribute only.
    every = [p for phrases in synonyms.values() for p in phrases]
    assert len(every) == len(set(every))
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


def test_one_placeholder_vocabulary_serves_the_cleanser_and_identity() -> None:
    from discovery_svc.domain import identity
    from discovery_svc.normalize import text

    data = vocab.load("placeholders")
    assert set(data) == {"_comment", "values", "name_words", "qualifiers"}
    # The cleanser: any cell holding one of 'values' is missing.
    assert {v.casefold() for v in data["values"]} == text.PLACEHOLDERS
    assert text.present("  N/A ") is None and text.present("(blank)") is None
    # Name-only words stay real data in other columns.
    assert text.present("0") == "0" and text.present("default") == "default"
    # Identity: every value and name word, alone or qualified, never identifies an asset.
    for name in [
        "unknown",
        "Name_unknown",
        "unknown host",
        "TBD-server",
        "#VALUE!",
        "(blank)",
        "0",
        "xxx",
        "not set",
        "Server Name: TBD".replace(":", ""),
    ]:
        assert identity.is_placeholder(name), name
    for name in ["web01", "unknown01", "default gateway"]:
        assert not identity.is_placeholder(name), name
