"""UploadImportData against bad input, memory and tenancy: clear errors, never half an import."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from flowpair.v1 import discovery_pb2, flow_pb2, orchestrator_pb2
from tests.support import (
    ROOT,
    Process,
    Stack,
    discovery_flow,
    eventually,
    fetchval,
    md,
    new_tenant,
)

REALDATA = ROOT / "examples" / "realdata" / "servicenow_style_cmdb_export.csv"


async def nothing_stored(stack: Stack) -> None:
    for table in ("imports", "raw_records", "quarantined_rows"):
        assert await fetchval(stack.database_url, f"SELECT count(*) FROM discovery.{table}") == 0


async def refused(
    stack: Stack,
    data: bytes,
    code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT,
    **kw: object,
) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.upload(new_tenant(), data, **kw)  # type: ignore[arg-type]
    assert err.value.code() == code, err.value.details()
    return err.value.details() or ""


@pytest.fixture
async def discovery(stack: Stack) -> Stack:
    await stack.start_discovery()
    return stack


async def test_bad_files_get_clear_errors_and_leave_nothing(discovery: Stack) -> None:
    garbage = random.Random(7).randbytes(300_000)
    assert "not UTF-8 text" in await refused(discovery, garbage)
    assert "no importable data rows" in await refused(discovery, b"host,ip\r\n")
    assert "no importable data rows (2 quarantined)" in await refused(
        discovery, b"host,ip\nonly-one-field\n,\n"
    )
    assert "upload is empty" in await refused(discovery, b"")
    wide = ",".join(f"c{i}" for i in range(10_000)).encode() + b"\n" + b"x," * 9_999 + b"x\n"
    assert "10000 columns" in await refused(discovery, wide)
    await nothing_stored(discovery)


async def test_a_50_mb_line_is_quarantined_and_the_rest_imported(discovery: Stack) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"host,ip\nweb1,10.0.0.1\nhuge,"
        for _ in range(50):
            yield b"y" * (1 << 20)
        yield b"\nweb2,10.0.0.2\n"

    imp = await discovery.upload(new_tenant(), chunks())
    assert imp.row_count == 2
    assert imp.quarantined_row_count == 1
    assert imp.quarantined_rows[0].line_number == 3
    assert imp.quarantined_rows[0].reason.startswith("row longer than")


async def test_metadata_rules_and_duplicate_ids(discovery: Stack) -> None:
    disc, tenant = discovery.discovery(), new_tenant()

    async def only_chunks() -> AsyncIterator[discovery_pb2.UploadImportDataRequest]:
        yield discovery_pb2.UploadImportDataRequest(chunk=b"a,b\n1,2\n")

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await disc.UploadImportData(only_chunks(), metadata=md(tenant))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    async def metadata_twice() -> AsyncIterator[discovery_pb2.UploadImportDataRequest]:
        meta = discovery_pb2.ImportMetadata(file_name="x.csv")
        yield discovery_pb2.UploadImportDataRequest(metadata=meta)
        yield discovery_pb2.UploadImportDataRequest(chunk=b"a,b\n1,2\n")
        yield discovery_pb2.UploadImportDataRequest(metadata=meta)

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await disc.UploadImportData(metadata_twice(), metadata=md(tenant))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await nothing_stored(discovery)

    import_id = uuid.uuid4()
    first = await discovery.upload(tenant, b"a,b\n1,2\n", import_id=import_id)
    assert first.name == f"imports/{import_id}"
    # Ids are the tenant's own: the same tenant is refused (another tenant is not, see
    # tests/test_bad_input.py).
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await discovery.upload(tenant, b"a,b\n3,4\n5,6\n", import_id=import_id)
    assert again.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert str(import_id) in (again.value.details() or "")
    assert await fetchval(discovery.database_url, "SELECT count(*) FROM discovery.raw_records") == 1


async def test_cancelled_upload_leaves_nothing(discovery: Stack) -> None:
    proceed = asyncio.Event()

    async def stalls() -> AsyncIterator[discovery_pb2.UploadImportDataRequest]:
        yield discovery_pb2.UploadImportDataRequest(metadata=discovery_pb2.ImportMetadata())
        yield discovery_pb2.UploadImportDataRequest(chunk=b"a,b\n" + b"1,2\n" * 200_000)
        proceed.set()
        await asyncio.sleep(3600)

    call = discovery.discovery().UploadImportData(stalls(), metadata=md(new_tenant()))
    await proceed.wait()
    await asyncio.sleep(0.3)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    async def rolled_back() -> bool:
        n = await fetchval(discovery.database_url, "SELECT count(*) FROM discovery.raw_records")
        idle = await fetchval(
            discovery.database_url,
            "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'"
            " AND datname = current_database()",
        )
        return bool(n == 0 and idle == 0)

    await eventually(rolled_back)
    await nothing_stored(discovery)


async def test_imports_belong_to_their_tenant(stack: Stack) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery()
    owner, stranger = new_tenant(), new_tenant()
    imp = await stack.upload(owner, b"host,ip\nweb1,10.0.0.1\n")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.discovery().GetImport(
            discovery_pb2.GetImportRequest(name=imp.name), metadata=md(stranger)
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    flow = discovery_flow(import_id=uuid.UUID(imp.name.split("/")[1]))
    name = (
        await stack.orchestrator().CreateFlow(
            orchestrator_pb2.CreateFlowRequest(flow=flow), metadata=md(stranger)
        )
    ).flow.name

    async def failed() -> orchestrator_pb2.Flow | None:
        f = (
            await stack.orchestrator().GetFlow(
                orchestrator_pb2.GetFlowRequest(name=name), metadata=md(stranger)
            )
        ).flow
        return f if f.status == flow_pb2.FLOW_STATUS_FAILED else None

    f = await eventually(failed)
    assert f is not None
    assert f.phases[1].error.reason == "IMPORT_NOT_FOUND"


async def test_real_cmdb_export_imports_cleanly(discovery: Stack) -> None:
    imp = await discovery.upload(new_tenant(), REALDATA.read_bytes(), chunk_size=1000)
    assert (imp.row_count, len(imp.columns), imp.quarantined_row_count) == (109, 17, 0)
    assert imp.columns[0] == "serv_u_environment"


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_200_mb_upload_in_bounded_memory(stack: Stack, tmp_path: Path) -> None:
    proc = Process("discovery_svc", stack.env(), tmp_path / "discovery.log")
    try:
        await proc.wait_serving(stack.discovery_port)
        row = b"web%07d.corp.example.com,10.1.2.3,Microsoft Windows Server 2016 Standard,16 GB,Production,Jane Doe,EMEA\n"  # noqa: E501
        per_chunk = (1 << 20) // len(row)
        total = 200 * (1 << 20)

        def chunks() -> Iterator[bytes]:
            yield b"host,ip,os,ram,env,owner,region\n"
            sent, n = 0, 0
            while sent < total:
                chunk = b"".join(row % (n + i) for i in range(per_chunk))
                n += per_chunk
                sent += len(chunk)
                yield chunk

        imp = await stack.upload(new_tenant(), chunks())
        assert imp.byte_count > total
        assert imp.quarantined_row_count == 0
        assert imp.row_count > 1_900_000
        peak = _peak_rss_mb(proc.proc.pid)
        print(f"discovery peak RSS after a {imp.byte_count / 2**20:.0f} MiB upload: {peak:.0f} MiB")
        assert peak < 250
    finally:
        proc.close()


async def test_nul_bytes_are_quarantined_not_fatal(discovery: Stack) -> None:
    imp = await discovery.upload(new_tenant(), b"host,ip\nweb1,10.0.0.1\nweb\x002,10.0.0.2\n")
    assert (imp.row_count, imp.quarantined_row_count) == (1, 1)
    assert "NUL" in imp.quarantined_rows[0].reason
    assert "\\0" in imp.quarantined_rows[0].excerpt
