"""Another language drives the whole journey: a Node.js client (``examples/node``) that loads
``protos/`` at run time with @grpc/proto-loader, uploads an export, creates a flow, approves
its mapping with the etag, follows it to COMPLETED, reads the inventory as enums, and decodes
a google.rpc.BadRequest from a bad request's status with the repository's google/rpc protos.

``make test`` installs its packages first (``npm ci`` in examples/node, from its lock file).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from flowpair_shared.auth.principal import Role
from tests.credentials import opaque_token
from tests.support import ROOT, Stack

NODE_CLIENT = ROOT / "examples" / "node"


async def test_a_node_client_runs_a_flow_and_reads_an_error(stack: Stack, tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "Node.js is needed for this test (Node 20 is on the machines that run it)"
    assert (NODE_CLIENT / "node_modules" / "@grpc" / "grpc-js").is_dir(), (
        "run `make test` (it installs examples/node's packages with npm ci)"
    )
    await stack.start_orchestrator()
    await stack.start_discovery()
    token, tenant = opaque_token(Role.OPERATOR)
    token_file = tmp_path / "token"
    token_file.write_text(token)
    command = [
        node,
        str(NODE_CLIENT / "journey.js"),
        "--orchestrator", f"127.0.0.1:{stack.orchestrator_port}",
        "--discovery", f"127.0.0.1:{stack.discovery_port}",
        "--token-file", str(token_file),
        "--account", str(tenant.client_account_id),
        "--engagement", str(tenant.engagement_id),
        "--csv", str(ROOT / "examples" / "cmdb_export.csv"),
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, out.decode() + err.decode()
    steps = {s["step"]: s for s in map(json.loads, out.decode().splitlines())}
    assert steps["upload"]["rows"] == 226
    assert steps["gate"]["status"] == "FLOW_STATUS_WAITING_FOR_APPROVAL"
    assert steps["approve"]["approved"] is True
    assert "MAPPING_STATE_SUGGESTED" not in steps["approve"]["states"]
    assert steps["done"]["status"] == "FLOW_STATUS_COMPLETED"
    assert steps["inventory"]["assets"] == 228
    assert steps["inventory"]["types"]["ASSET_TYPE_VIRTUAL_MACHINE"] == 52
    assert steps["bad_request"] == {
        "step": "bad_request",
        "code": "INVALID_ARGUMENT",
        "fields": ["flow.display_name", "flow.data_import"],
        "reason": "INVALID_ARGUMENT",
        "domain": "flowpair.dev",
    }
