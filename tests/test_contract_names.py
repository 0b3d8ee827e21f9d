"""No name in the contract is a keyword of a language clients generate code in.

Found by a generated Python client: ``Flow.import`` could only be reached with ``getattr``;
Java, Go, C#, Kotlin, Swift and JavaScript reserve the word too, each generator escapes it its
own way (``import_``, ``Import_``, ``@import``). Every field and oneof name of the protos is
checked against the keywords of those languages (tests/client_keywords.txt); messages,
enums, services and methods are PascalCase in every generator, which no keyword is.
"""

from __future__ import annotations

import importlib
import keyword
import pkgutil
from collections.abc import Iterator

from google.protobuf.descriptor import Descriptor, FileDescriptor

import flowpair.internal.v1
import flowpair.v1
from tests.support import ROOT

_KEYWORDS = frozenset(keyword.kwlist) | frozenset(
    word
    for line in (ROOT / "tests" / "client_keywords.txt").read_text().splitlines()
    if not line.startswith("#")
    for word in line.split()
)
# A field name every generator handles by convention: ``type`` is the AIP's name for a
# resource's kind in the AIPs, and Rust's prost writes it ``r#type``, Kotlin and Go capitalise
# or accept it. Listed here, so any other clash is a decision someone made on purpose.
_ALLOWED = frozenset({"type"})


def _files() -> Iterator[FileDescriptor]:
    for package in (flowpair.v1, flowpair.internal.v1):
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.endswith("_pb2"):
                module = importlib.import_module(f"{package.__name__}.{info.name}")
                yield module.DESCRIPTOR


def _messages(message: Descriptor) -> Iterator[Descriptor]:
    yield message
    for nested in message.nested_types:
        yield from _messages(nested)


def _names() -> Iterator[tuple[str, str]]:
    """(where, name) of every field and oneof: the names generators turn into identifiers
    as written."""
    for f in _files():
        for message in f.message_types_by_name.values():
            for m in _messages(message):
                for field in m.fields:
                    yield field.full_name, field.name
                for oneof in m.oneofs:
                    yield oneof.full_name, oneof.name


def test_no_contract_name_is_a_keyword() -> None:
    names = list(_names())
    assert len(names) > 100, names  # every generated module was found
    clashes = sorted(where for where, name in names if name in _KEYWORDS and name not in _ALLOWED)
    assert not clashes, f"names that are keywords in a common client language: {clashes}"
