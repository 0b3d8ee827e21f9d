"""The inventory's closed vocabularies and the contract's enums name the same sets.

Values that are closed sets (asset type, environment, OS family, criticality, dependency
kind) travelled as strings: clients compared text, and the contract's comments listed sets
that had drifted from the data (OS families left out "network"). Each is now an enum whose
values are the vocabulary's words (``discovery_svc.entrypoints.vocabularies``); a word added to
a vocabulary without its enum value, or the other way round, fails here.
"""

from __future__ import annotations

import pytest

from discovery_svc.entrypoints.vocabularies import ALL, Vocabulary
from flowpair_shared.errors import Validator


@pytest.mark.parametrize("vocabulary", ALL, ids=lambda v: v.prefix.rstrip("_"))
def test_the_enum_names_every_word_and_nothing_else(vocabulary: Vocabulary[int]) -> None:
    unspecified = vocabulary.prefix + "UNSPECIFIED"
    names = vocabulary.enum.keys()  # an enum type wrapper is not iterable
    named = {n[len(vocabulary.prefix) :].lower() for n in names if n != unspecified}
    assert named == vocabulary.words
    for word in vocabulary.words:
        v = Validator()
        assert vocabulary.word(vocabulary.number(word), "f", v) == word
        assert not v.violations


@pytest.mark.parametrize("vocabulary", ALL, ids=lambda v: v.prefix.rstrip("_"))
def test_unset_and_unknown_values(vocabulary: Vocabulary[int]) -> None:
    v = Validator()
    assert vocabulary.number(None) == vocabulary.number("") == 0
    assert vocabulary.word(0, "f", v) is None and not v.violations
    assert vocabulary.word(999, "f", v) is None
    assert [x.field for x in v.violations] == ["f"]
    assert vocabulary.number("no such word") == 0  # stored data older than the contract
