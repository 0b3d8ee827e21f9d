"""Every error reason the services can answer is in the contract.

The error model was not in the contract: a client learnt which ErrorInfo reasons came back
(INCOMPLETE_FLOW_EXISTS, MAPPING_INCOMPLETE, TOO_MANY_UPLOADS, ...) only by meeting them.
The protos now say per method which reasons it answers; this holds every reason the code
sets (``reason="..."`` on a domain error, the error classes' own, the database failures')
to a mention in the protos, so a new one cannot ship undocumented.
"""

from __future__ import annotations

import re

from flowpair_shared.grpc_errors import _INFRASTRUCTURE, DOMAIN
from tests.support import ROOT

_SET = re.compile(r'\breason\s*=\s*"([A-Z][A-Z0-9_]+)"')


def _reasons_in_code() -> dict[str, str]:
    found: dict[str, str] = {}
    for package in ("orchestrator_svc", "discovery_svc", "flowpair_shared"):
        for path in (ROOT / package).rglob("*.py"):
            for reason in _SET.findall(path.read_text()):
                found.setdefault(reason, str(path.relative_to(ROOT)))
    for _code, reason, _message in _INFRASTRUCTURE.values():
        found.setdefault(reason, "flowpair_shared/grpc_errors.py")
    return found


def test_every_reason_the_services_answer_is_documented() -> None:
    reasons = _reasons_in_code()
    assert {"INCOMPLETE_FLOW_EXISTS", "MALFORMED_REQUEST", "DATABASE_UNAVAILABLE"} <= set(reasons)
    contract = "\n".join(p.read_text() for p in (ROOT / "protos" / "flowpair").rglob("*.proto"))
    assert f'"{DOMAIN}"' in contract
    undocumented = {
        reason: where
        for reason, where in reasons.items()
        if not re.search(rf"\b{reason}\b", contract)
    }
    assert not undocumented, f"reasons the protos do not mention: {undocumented}"
