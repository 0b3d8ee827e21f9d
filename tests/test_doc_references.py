"""Every document the repository's own text cites is in the repository.

Found by reading the demo as a new user: it sent the reader to a section of a design document
that lives outside the repository (with the project's planning notes), so a clone had
nothing to follow. Any ``*.md`` path named in a tracked text file must be a tracked file: that
path from the root, or a file of that name (code builds some paths from parts).
"""

from __future__ import annotations

import re
import subprocess

from tests.support import ROOT

_CITED = re.compile(r"(?<![\w/.-])([\w./-]+\.md)\b")
_TEXT = (".py", ".md", ".proto", ".toml", ".yml", ".yaml", ".sh", ".cfg", "Makefile")


def _tracked_text() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    return [p for p in listed if p.endswith(_TEXT) and not p.startswith("bench/results/")]


def test_every_cited_document_is_in_the_repository() -> None:
    files = _tracked_text()
    assert "README.md" in files
    documents = {p for p in files if p.endswith(".md")}
    names = {p.rsplit("/", 1)[-1] for p in documents}
    missing = []
    for path in files:
        for number, line in enumerate((ROOT / path).read_text().splitlines(), start=1):
            for cited in _CITED.findall(re.sub(r"\w+://\S+", "", line)):
                if cited not in documents and ("/" in cited or cited not in names):
                    missing.append(f"{path}:{number}: {cited}")
    assert not missing, "documents cited but not in the repository:\n" + "\n".join(missing)


def test_every_resource_name_the_contract_documents_is_one_the_services_parse() -> None:
    # PhaseStatusEvent.child_flow documented "discoveryFlows/{…}"; the server requires
    # "childFlows/{uuid}". A client generator's users read the comments, not the server.
    from discovery_svc.entrypoints.grpc_api import ASSETS
    from flowpair_shared.names import CHILD_FLOWS, FLOWS, IMPORTS, MESSAGES

    served = {ASSETS, CHILD_FLOWS, FLOWS, IMPORTS, MESSAGES}
    documented = {
        (proto.relative_to(ROOT).as_posix(), collection)
        for proto in (ROOT / "protos").rglob("*.proto")
        for collection in re.findall(r'"([A-Za-z]+)/\{', proto.read_text())
    }
    assert {c for _, c in documented} >= {FLOWS, CHILD_FLOWS}
    assert not {(p, c) for p, c in documented if c not in served}
