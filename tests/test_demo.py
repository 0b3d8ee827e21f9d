"""`make demo` end to end: the script starts both services itself and drives the journey."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from tests.support import ROOT


async def test_demo_completes_with_the_inventory_summary_and_the_findings(
    database_url: str,
) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "examples/demo.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "COMPLETED"
    # 220 distinct hosts and 8 applications in examples/cmdb_export.csv.
    assert any(line.startswith("   228 assets, ") for line in lines)
    # "Virtual Machine" rows are virtual machines now, not servers.
    by_type = (
        "   by type: server 92, database 72, virtual_machine 52, application 8, network_device 4"
    )
    assert by_type in lines, [line for line in lines if "by type" in line]
    assert "   missing required attributes: none" in lines
    # The findings: each data phase's summary (GetChildFlow), then the issues (ListDataIssues).
    findings = lines[lines.index("7. Findings (GetChildFlow phase summaries, ListDataIssues)") :]
    for line in (
        "   DATA_CLEANSING: rows 226 in, 226 out; issues: INVALID_VALUE 5 (5 rows)",
        "   ASSET_INVENTORY: rows 226 in, 226 out; assets 228 created, 0 updated, 6 merged;"
        " issues: none",
        "   DEPENDENCY_ANALYSIS: rows 226 in, 0 out; 456 dependencies; issues: none",
        "   5 issues:",
        '   - row 12 memory_gb (RAM) WARNING INVALID_VALUE: not a size "lots"',
    ):
        assert line in findings, findings
    assert sum(line.startswith("   - row ") for line in findings) == 5, findings
    assert "   228 assets, 456 dependencies" in lines
