"""`flowctl`, the console script the package installs, drives the demo journey: upload,
create, watch to the gate, show and approve the mapping, watch to COMPLETED, list the
inventory and the issues; and its exit codes say what went wrong."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from flowpair_shared.auth.principal import Role
from tests.credentials import opaque_token
from tests.support import ROOT, Stack

FLOWCTL = Path(sys.executable).parent / "flowctl"


class Cli:
    def __init__(self, stack: Stack, tmp: Path) -> None:
        token, tenant = opaque_token(Role.OPERATOR)
        self.env = {
            **os.environ,
            "FLOWPAIR_ORCHESTRATOR": f"127.0.0.1:{stack.orchestrator_port}",
            "FLOWPAIR_DISCOVERY": f"127.0.0.1:{stack.discovery_port}",
            "FLOWPAIR_TOKEN": token,
            "FLOWPAIR_ACCOUNT": str(tenant.client_account_id),
            "FLOWPAIR_ENGAGEMENT": str(tenant.engagement_id),
            "FLOWCTL_CONFIG": str(tmp / "none.toml"),
            "COLUMNS": "200",
        }

    async def run(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            str(FLOWCTL),
            *args,
            env=env or self.env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def ok(self, *args: str) -> str:
        code, out, err = await self.run(*args)
        assert code == 0, (args, code, out, err)
        return out

    async def json(self, *args: str) -> Any:
        return json.loads(await self.ok("--json", *args))


async def test_flowctl_drives_the_demo_journey(stack: Stack, tmp_path: Path) -> None:
    assert FLOWCTL.is_file(), "the package installs the flowctl console script"
    await stack.start_orchestrator()
    await stack.start_discovery()
    cli = Cli(stack, tmp_path)

    uploaded = await cli.json("upload", "examples/cmdb_export.csv")
    imported = uploaded["data_import"]
    assert imported["row_count"] == "226"
    created = await cli.json("create", "--import", imported["name"], "--name", "Q3 inventory")
    flow = created["flow"]["name"]

    gate = await cli.ok("watch", flow, "--until", "waiting_for_approval")
    assert gate.rstrip().endswith("→ WAITING_FOR_APPROVAL"), gate
    table = await cli.ok("mappings", flow)
    assert "Server Name" in table and "hostname" in table and "SUGGESTED" in table, table
    kept = await cli.ok("remap", flow, "--column", "Server Name", "--accept")
    assert "Server Name" in kept and "APPROVED" in kept, kept
    code, _, err = await cli.run("remap", flow, "--column", "Server Name")
    assert code == 2 and "exactly one" in err, err
    code, _, err = await cli.run("remap", flow, "--column", "Server Name", "--to", "no_such")
    assert code == 3 and "INVALID_ARGUMENT" in err, err
    approved = await cli.json("approve", flow, "--waive-missing")
    assert approved["approved"] is True
    done = await cli.ok("watch", flow)
    assert done.rstrip().endswith("→ COMPLETED"), done
    assert "FLOW_STATUS_COMPLETED" in json.dumps(await cli.json("get", flow))

    vms = await cli.json("assets", "--type", "virtual_machine", "--page-size", "1000")
    assert vms["total_size"] == "52" and len(vms["assets"]) == 52
    assert {a["asset_type"] for a in vms["assets"]} == {"ASSET_TYPE_VIRTUAL_MACHINE"}
    assert "52 assets" in await cli.ok("assets", "--type", "virtual_machine")
    assert len((await cli.json("deps", "--page-size", "1000"))["dependencies"]) > 0
    found = await cli.ok("issues", flow)
    assert "lots" in found and "memory_gb" in found, found
    listed = await cli.json("list")
    assert [f["name"] for f in listed["flows"]] == [flow]

    # Exit codes that say what went wrong, with the server's message on stderr.
    code, _, err = await cli.run("get", f"flows/{uuid.uuid4()}")
    assert code == 4 and "NOT_FOUND" in err, err
    code, _, err = await cli.run("pause", flow)
    assert code == 5 and "FAILED_PRECONDITION" in err, err
    code, _, err = await cli.run("retry", flow, "NO_SUCH_PHASE")
    assert code == 2 and "DATA_IMPORT" in err, err
    code, _, err = await cli.run("get", "not-a-name")
    assert code == 3 and "INVALID_ARGUMENT" in err, err
    no_tenant = {k: v for k, v in cli.env.items() if k != "FLOWPAIR_ENGAGEMENT"}
    code, _, err = await cli.run("list", env=no_tenant)
    assert code == 2 and "--engagement" in err, err
    bad_token = {**cli.env, "FLOWPAIR_TOKEN": "not-a-token"}
    code, _, err = await cli.run("list", env=bad_token)
    assert code == 6 and "UNAUTHENTICATED" in err, err

    # A flow that fails: watching it ends with exit code 8. Server text is shown as text (a
    # name with "[/x]" in it was taken for markup and crashed the error message).
    missing = await cli.json("create", "--import", f"imports/{uuid.uuid4()}", "--allow-concurrent")
    code, out, err = await cli.run("watch", missing["flow"]["name"])
    assert code == 8 and out.rstrip().endswith("→ FAILED"), (out, err)
    diagnosed = await cli.ok("diagnose", missing["flow"]["name"])
    assert "PHASE_FAILED" in diagnosed and "IMPORT_NOT_FOUND" in diagnosed, diagnosed
    assert "RetryPhase" in diagnosed and "child FAILED" in diagnosed, diagnosed
    found = await cli.json("diagnose", flow)
    assert [f["code"] for f in found["findings"]] == ["FINDING_CODE_HEALTHY"], found

    # Parked messages are an admin's: an operator is refused; an admin sees the tenant's.
    code, _, err = await cli.run("parked")
    assert code == 6 and "PERMISSION_DENIED" in err, err
    admin_token, admin = opaque_token(Role.ADMIN)
    as_admin = {
        **cli.env,
        "FLOWPAIR_TOKEN": admin_token,
        "FLOWPAIR_ACCOUNT": str(admin.client_account_id),
        "FLOWPAIR_ENGAGEMENT": str(admin.engagement_id),
    }
    code, out, err = await cli.run("--json", "parked", "--destination", "discovery", env=as_admin)
    assert code == 0 and json.loads(out) == {}, (out, err)
    code, _, err = await cli.run("requeue", env=as_admin)
    assert code == 2 and "exactly one" in err, err
    code, _, err = await cli.run("requeue", "--message", f"messages/{uuid.uuid4()}", env=as_admin)
    assert code == 4 and "NOT_FOUND" in err, err

    code, _, err = await cli.run("get", "flows/[/x]")
    assert code == 3 and "'[/x]'" in err, err
    code, _, err = await cli.run("watch", flow, "--until", "waiting_for_aproval")
    assert code == 2 and "WAITING_FOR_APPROVAL" in err, err

    # Two flows now: a page of one says how to get the next.
    code, out, err = await cli.run("list", "--page-size", "1")
    assert code == 0 and "--page-token" in err, err

    # --help needs no token or tenant.
    code, out, err = await cli.run("upload", "--help", env={"PATH": os.environ["PATH"]})
    assert code == 0 and "Upload a CSV export" in out, err

    # Token precedence: FLOWPAIR_TOKEN_FILE (environment) over the config file's token.
    good = tmp_path / "token"
    good.write_text(cli.env["FLOWPAIR_TOKEN"])
    config = tmp_path / "flowctl.toml"
    config.write_text('token = "from-the-config"\n')
    from_env = {k: v for k, v in cli.env.items() if k != "FLOWPAIR_TOKEN"}
    from_env |= {"FLOWPAIR_TOKEN_FILE": str(good), "FLOWCTL_CONFIG": str(config)}
    code, _, err = await cli.run("list", env=from_env)
    assert code == 0, err

    # The tenant from a config file when neither flags nor the environment say.
    config.write_text(f'engagement = "{cli.env["FLOWPAIR_ENGAGEMENT"]}"\n')
    code, out, err = await cli.run(
        "--json", "list", env={**no_tenant, "FLOWCTL_CONFIG": str(config)}
    )
    assert code == 0 and flow in [f["name"] for f in json.loads(out)["flows"]], err
