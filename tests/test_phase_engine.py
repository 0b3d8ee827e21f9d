"""The phase engine end to end: upload, phases, lifecycle, history and WatchFlow."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterable, Sequence
from typing import ClassVar

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.domain.model import ChildFlow
from discovery_svc.phases import HANDLERS
from discovery_svc.phases.base import PhaseOutcome
from flowpair.internal.v1 import child_flow_service_pb2 as child_pb2
from flowpair.internal.v1 import flow_event_service_pb2 as events_pb2
from flowpair.v1 import discovery_pb2, flow_pb2, orchestrator_pb2
from flowpair_shared.domain import Phase, PhaseStatus
from tests.support import (
    Stack,
    discovery_flow,
    eventually,
    fetch,
    fetchval,
    md,
    new_tenant,
    peer_md,
)

HEADER = b"Server Name,IP Addr,O/S,RAM (GB),Environment,Owner\r\n"
OSES = ["Windows 2012 R2 Standard", "RHEL 8.6", "Ubuntu 22.04 LTS", "Win2k19"]


def inventory(rows: int, *, bad_rows: bool = True) -> bytes:
    """A CMDB-like CSV: FQDNs (the first five twice), IPs, OS, RAM, environment, owner."""
    lines = [b"\xef\xbb\xbf" + HEADER]
    for i in range(rows):
        host = f"web{i % (rows - 5) if i >= rows - 5 else i:05d}.corp.example.com"
        owner = "" if i % 5 < 3 else f"owner{i % 7}"
        env = "Production" if i % 3 else "Development"
        line = (
            f"{host},10.{i // 65536}.{i // 256 % 256}.{i % 256},{OSES[i % 4]},16 GB,{env},{owner}"
        )
        lines.append(line.encode() + b"\r\n")
        if bad_rows and i == 100:
            lines.append(b"only,three,fields\r\n")
            lines.append(b",,,,,\r\n")
            lines.append(b"bad\xff\xfe.example.com,10.9.9.9,RHEL 8,8 GB,Production,x\r\n")
    return b"".join(lines)


def Flow(import_name: str, **kw: object) -> orchestrator_pb2.CreateFlowRequest:
    return orchestrator_pb2.CreateFlowRequest(
        flow=discovery_flow(import_id=uuid.UUID(import_name.split("/")[1]), **kw)  # type: ignore[arg-type]
    )


async def flow_state(stack: Stack, tenant: object, name: str) -> orchestrator_pb2.Flow:
    r = await stack.orchestrator().GetFlow(
        orchestrator_pb2.GetFlowRequest(name=name),
        metadata=md(tenant),  # type: ignore[arg-type]
    )
    return r.flow


def phase(flow: orchestrator_pb2.Flow, p: int) -> flow_pb2.PhaseState:
    return next(s for s in flow.phases if s.phase == p)


async def wait_status(
    stack: Stack, tenant: object, name: str, status: int, timeout: float = 30
) -> orchestrator_pb2.Flow:
    async def reached() -> orchestrator_pb2.Flow | None:
        f = await flow_state(stack, tenant, name)
        return f if f.status == status else None

    result = await eventually(reached, timeout=timeout)
    assert result is not None
    return result


async def all_events(stack: Stack, tenant: object, name: str) -> list[flow_pb2.FlowEvent]:
    events: list[flow_pb2.FlowEvent] = []
    token = ""
    while True:
        page = await stack.orchestrator().ListFlowEvents(
            orchestrator_pb2.ListFlowEventsRequest(name=name, page_size=3, page_token=token),
            metadata=md(tenant),  # type: ignore[arg-type]
        )
        events += page.events
        token = page.next_page_token
        if not token:
            return events


async def lifecycle_events(stack: Stack, tenant: object, name: str) -> list[tuple[int, str]]:
    """The flow's history without its phase changes: (kind, reason) of each entry."""
    return [
        (e.kind, e.reason)
        for e in await all_events(stack, tenant, name)
        if e.kind != flow_pb2.FLOW_EVENT_KIND_PHASE_CHANGED
    ]


async def test_upload_reports_rows_columns_and_quarantine(stack: Stack) -> None:
    await stack.start_discovery()
    tenant = new_tenant()
    imp = await stack.upload(tenant, inventory(10_000), chunk_size=7_777)
    assert imp.row_count == 10_000
    assert list(imp.columns) == [
        "Server Name",
        "IP Addr",
        "O/S",
        "RAM (GB)",
        "Environment",
        "Owner",
    ]
    assert imp.had_bom and imp.delimiter == ","
    assert imp.quarantined_row_count == 3
    reasons = [q.reason for q in imp.quarantined_rows]
    assert reasons[0].startswith("ragged row: 3 fields, header has 6")
    assert reasons[1] == "empty row"
    assert "undecodable" in reasons[2]
    assert [q.line_number for q in imp.quarantined_rows] == [103, 104, 105]
    got = await stack.discovery().GetImport(
        discovery_pb2.GetImportRequest(name=imp.name), metadata=md(tenant)
    )
    assert got.data_import == imp
    assert (
        await fetchval(stack.database_url, "SELECT count(*) FROM discovery.raw_records") == 10_000
    )


async def test_flow_runs_to_the_approval_gate_with_history_streamed(stack: Stack) -> None:
    orchestrator_app = await stack.start_orchestrator()
    assert orchestrator_app
    tenant = new_tenant()
    discovery_app = await stack.start_discovery()
    imp = await stack.upload(tenant, inventory(10_000))
    # Hold phases back until the watch is open, so it sees the flow start.
    await stack.runner().stop()
    created = (await stack.orchestrator().CreateFlow(Flow(imp.name), metadata=md(tenant))).flow

    seen: list[flow_pb2.FlowEvent] = []
    watch = stack.orchestrator().WatchFlow(
        orchestrator_pb2.WatchFlowRequest(name=created.name), metadata=md(tenant)
    )

    async def follow() -> None:
        async for response in watch:
            seen.append(response.event)
            if response.event.phase_status == flow_pb2.PHASE_STATUS_WAITING_FOR_APPROVAL:
                return

    follower = asyncio.create_task(follow())
    await eventually(lambda: _nonempty(seen))
    stack.runner().start()
    await asyncio.wait_for(follower, 60)
    watch.cancel()
    assert discovery_app

    flow = await flow_state(stack, tenant, created.name)
    assert flow.status == flow_pb2.FLOW_STATUS_WAITING_FOR_APPROVAL
    assert flow.current_phase == flow_pb2.PHASE_ATTRIBUTE_MAPPING
    for p in (
        flow_pb2.PHASE_INITIALIZATION,
        flow_pb2.PHASE_DATA_IMPORT,
        flow_pb2.PHASE_DATA_VALIDATION,
    ):
        assert phase(flow, p).status == flow_pb2.PHASE_STATUS_COMPLETED

    history = await all_events(stack, tenant, created.name)
    assert [e.sequence for e in history] == list(range(1, len(history) + 1))
    assert history == seen
    assert [(e.kind, e.phase, e.phase_status) for e in history] == [
        (flow_pb2.FLOW_EVENT_KIND_CREATED, 0, 0),
        (
            flow_pb2.FLOW_EVENT_KIND_PHASE_CHANGED,
            flow_pb2.PHASE_INITIALIZATION,
            flow_pb2.PHASE_STATUS_COMPLETED,
        ),
        *[
            (flow_pb2.FLOW_EVENT_KIND_PHASE_CHANGED, p, s)
            for p in (flow_pb2.PHASE_DATA_IMPORT, flow_pb2.PHASE_DATA_VALIDATION)
            for s in (flow_pb2.PHASE_STATUS_RUNNING, flow_pb2.PHASE_STATUS_COMPLETED)
        ],
        (
            flow_pb2.FLOW_EVENT_KIND_PHASE_CHANGED,
            flow_pb2.PHASE_ATTRIBUTE_MAPPING,
            flow_pb2.PHASE_STATUS_RUNNING,
        ),
        (
            flow_pb2.FLOW_EVENT_KIND_PHASE_CHANGED,
            flow_pb2.PHASE_ATTRIBUTE_MAPPING,
            flow_pb2.PHASE_STATUS_WAITING_FOR_APPROVAL,
        ),
    ]

    # Reopened from sequence N, the stream replays exactly what came after N.
    replay: list[flow_pb2.FlowEvent] = []
    again = stack.orchestrator().WatchFlow(
        orchestrator_pb2.WatchFlowRequest(name=created.name, after_sequence=3),
        metadata=md(tenant),
    )
    async for response in again:
        replay.append(response.event)
        if response.event.sequence == history[-1].sequence:
            break
    again.cancel()
    assert replay == history[3:]

    profile = (
        await stack.discovery().GetDataProfile(
            discovery_pb2.GetDataProfileRequest(master_flow=created.name), metadata=md(tenant)
        )
    ).profile
    assert profile.row_count == 10_000
    cols = {c.name: c for c in profile.columns}
    assert cols["IP Addr"].inferred_type == discovery_pb2.VALUE_KIND_IPV4
    assert cols["Server Name"].inferred_type == discovery_pb2.VALUE_KIND_FQDN
    assert cols["O/S"].inferred_type == discovery_pb2.VALUE_KIND_OS
    assert cols["RAM (GB)"].inferred_type == discovery_pb2.VALUE_KIND_SIZE
    assert cols["Environment"].inferred_type == discovery_pb2.VALUE_KIND_TEXT
    assert cols["Owner"].null_fraction == pytest.approx(0.6)
    assert cols["IP Addr"].distinct_count == 10_000
    assert cols["Environment"].distinct_count == 2
    [dup] = profile.duplicate_keys
    assert (dup.column, dup.duplicate_value_count, dup.affected_row_count) == ("Server Name", 5, 10)
    codes = {(f.code, f.column) for f in profile.flags}
    assert ("QUARANTINED_ROWS", "") in codes
    assert ("MOSTLY_EMPTY_COLUMN", "Owner") in codes
    assert ("DUPLICATE_KEYS", "Server Name") in codes


async def _nonempty(items: Sequence[object]) -> bool:
    return bool(items)


async def test_pause_at_the_boundary_resume_and_cancel(stack: Stack) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    imp = await stack.upload(tenant, inventory(50, bad_rows=False))
    orch = stack.orchestrator()
    await stack.runner().stop()  # DATA_IMPORT will be RUNNING but not finish yet
    name = (await orch.CreateFlow(Flow(imp.name), metadata=md(tenant))).flow.name

    async def importing() -> bool:
        f = await flow_state(stack, tenant, name)
        return phase(f, flow_pb2.PHASE_DATA_IMPORT).status == flow_pb2.PHASE_STATUS_RUNNING

    await eventually(importing)
    paused = (
        await orch.PauseFlow(
            orchestrator_pb2.PauseFlowRequest(name=name, reason="checking the upload"),
            metadata=md(tenant),
        )
    ).flow
    assert paused.status == flow_pb2.FLOW_STATUS_PAUSED
    assert paused.paused_by == str(tenant.user_id)
    stack.runner().start()

    async def import_done() -> bool:
        f = await flow_state(stack, tenant, name)
        return phase(f, flow_pb2.PHASE_DATA_IMPORT).status == flow_pb2.PHASE_STATUS_COMPLETED

    await eventually(import_done)
    f = await flow_state(stack, tenant, name)
    assert f.status == flow_pb2.FLOW_STATUS_PAUSED
    assert phase(f, flow_pb2.PHASE_DATA_VALIDATION).status == flow_pb2.PHASE_STATUS_PENDING
    # The boundary held: no command to start DATA_VALIDATION was ever written.
    assert await _run_phase_commands(stack, name) == [flow_pb2.PHASE_DATA_IMPORT]

    resumed = (
        await orch.ResumeFlow(orchestrator_pb2.ResumeFlowRequest(name=name), metadata=md(tenant))
    ).flow
    assert resumed.status == flow_pb2.FLOW_STATUS_RUNNING
    await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_WAITING_FOR_APPROVAL)

    cancelled = (
        await orch.CancelFlow(
            orchestrator_pb2.CancelFlowRequest(name=name, reason="wrong file"), metadata=md(tenant)
        )
    ).flow
    assert cancelled.status == flow_pb2.FLOW_STATUS_CANCELLED
    for call in (
        orch.PauseFlow(orchestrator_pb2.PauseFlowRequest(name=name), metadata=md(tenant)),
        orch.ResumeFlow(orchestrator_pb2.ResumeFlowRequest(name=name), metadata=md(tenant)),
        orch.CancelFlow(orchestrator_pb2.CancelFlowRequest(name=name), metadata=md(tenant)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "current state is CANCELLED" in (err.value.details() or "")

    async def child_cancelled() -> bool:
        child = await stack.discovery().GetChildFlow(
            discovery_pb2.GetChildFlowRequest(master_flow=name), metadata=md(tenant)
        )
        return child.child_flow.status == flow_pb2.FLOW_STATUS_CANCELLED

    await eventually(child_cancelled)
    assert await lifecycle_events(stack, tenant, name) == [
        (flow_pb2.FLOW_EVENT_KIND_CREATED, ""),
        (flow_pb2.FLOW_EVENT_KIND_PAUSED, "checking the upload"),
        (flow_pb2.FLOW_EVENT_KIND_RESUMED, ""),
        (flow_pb2.FLOW_EVENT_KIND_CANCELLED, "wrong file"),
    ]
    # A watch of a cancelled flow replays its history and ends by itself.
    watched = [
        r.event
        async for r in orch.WatchFlow(
            orchestrator_pb2.WatchFlowRequest(name=name), metadata=md(tenant)
        )
    ]
    assert watched[-1].kind == flow_pb2.FLOW_EVENT_KIND_CANCELLED


async def _run_phase_commands(stack: Stack, name: str) -> list[int]:
    rows = await fetch(
        stack.database_url,
        "SELECT payload FROM messaging.outbox WHERE ordering_key = $1"
        " AND method = '/flowpair.internal.v1.ChildFlowService/RunPhase' ORDER BY seq",
        uuid.UUID(name.split("/")[1]),
    )
    return [child_pb2.RunPhaseRequest.FromString(r["payload"]).phase for r in rows]


async def test_cancel_while_a_phase_runs_stops_everything(stack: Stack) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    imp = await stack.upload(tenant, inventory(50, bad_rows=False))
    await stack.runner().stop()
    orch = stack.orchestrator()
    name = (await orch.CreateFlow(Flow(imp.name), metadata=md(tenant))).flow.name

    async def importing() -> bool:
        f = await flow_state(stack, tenant, name)
        return phase(f, flow_pb2.PHASE_DATA_IMPORT).status == flow_pb2.PHASE_STATUS_RUNNING

    await eventually(importing)
    await orch.CancelFlow(orchestrator_pb2.CancelFlowRequest(name=name), metadata=md(tenant))

    async def job_cancelled() -> bool:
        state = await fetchval(stack.database_url, "SELECT state FROM discovery.phase_jobs")
        return bool(state == "cancelled")

    await eventually(job_cancelled)
    stack.runner().start()
    f = await flow_state(stack, tenant, name)
    assert f.status == flow_pb2.FLOW_STATUS_CANCELLED
    assert await _run_phase_commands(stack, name) == [flow_pb2.PHASE_DATA_IMPORT]


async def until_imported(
    stream: AsyncIterable[orchestrator_pb2.WatchFlowResponse],
) -> list[flow_pb2.FlowEvent]:
    """A watch's events up to DATA_IMPORT's completion (fewer if the stream ends first)."""
    seen = []
    async for r in stream:
        seen.append(r.event)
        if (r.event.phase, r.event.phase_status) == (
            flow_pb2.PHASE_DATA_IMPORT,
            flow_pb2.PHASE_STATUS_COMPLETED,
        ):
            break
    return seen


async def test_failed_phase_reports_its_error_and_retry_completes(stack: Stack) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    orch = stack.orchestrator()
    import_id = uuid.uuid4()  # the flow names an import that is not uploaded yet
    name = (await orch.CreateFlow(Flow(f"imports/{import_id}"), metadata=md(tenant))).flow.name
    failed = await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_FAILED)
    state = phase(failed, flow_pb2.PHASE_DATA_IMPORT)
    assert state.status == flow_pb2.PHASE_STATUS_FAILED
    assert state.error.reason == "IMPORT_NOT_FOUND"
    assert f"imports/{import_id}" in state.error.message
    events = await all_events(stack, tenant, name)
    assert events[-1].error.reason == "IMPORT_NOT_FOUND"
    # Two counters, named apart: the history's (what after_sequence takes) and the child's.
    assert failed.history_sequence == events[-1].sequence == len(events)
    assert 0 < failed.child_event_sequence < failed.history_sequence

    # Nothing more comes to a FAILED flow unless someone retries: a watch ends after its
    # history, unless it asks to follow retries; then the retry's events come on it.
    watched = [
        r.event
        async for r in orch.WatchFlow(
            orchestrator_pb2.WatchFlowRequest(name=name), metadata=md(tenant)
        )
    ]
    assert [e.sequence for e in watched] == [e.sequence for e in events]
    following = orch.WatchFlow(
        orchestrator_pb2.WatchFlowRequest(
            name=name, after_sequence=events[-1].sequence, follow_retries=True
        ),
        metadata=md(tenant),
    )
    followed = asyncio.create_task(until_imported(following))

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await orch.RetryPhase(
            orchestrator_pb2.RetryPhaseRequest(name=name, phase=flow_pb2.PHASE_DATA_VALIDATION),
            metadata=md(tenant),
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    await stack.upload(tenant, inventory(20, bad_rows=False), import_id=import_id)
    retried = (
        await orch.RetryPhase(
            orchestrator_pb2.RetryPhaseRequest(
                name=name, phase=flow_pb2.PHASE_DATA_IMPORT, reason="uploaded it"
            ),
            metadata=md(tenant),
        )
    ).flow
    assert retried.status == flow_pb2.FLOW_STATUS_RUNNING
    after_retry = await asyncio.wait_for(followed, 60)
    following.cancel()
    assert after_retry[0].sequence == events[-1].sequence + 1
    assert after_retry[-1].phase_status == flow_pb2.PHASE_STATUS_COMPLETED
    done = await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_WAITING_FOR_APPROVAL)
    assert phase(done, flow_pb2.PHASE_DATA_IMPORT).status == flow_pb2.PHASE_STATUS_COMPLETED
    assert not phase(done, flow_pb2.PHASE_DATA_IMPORT).HasField("error")


async def test_a_watch_sees_a_retry_committed_between_its_two_reads(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The watch reads the flow's status, then its history. A retry committed in between is
    # in the history read while the status still said FAILED: the stream ended there, on a
    # RUNNING flow. The retry is made to land exactly there.
    from orchestrator_svc.adapters import repository

    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    orch = stack.orchestrator()
    import_id = uuid.uuid4()
    name = (await orch.CreateFlow(Flow(f"imports/{import_id}"), metadata=md(tenant))).flow.name
    failed = await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_FAILED)
    await stack.upload(tenant, inventory(20, bad_rows=False), import_id=import_id)
    real_status_of = repository.status_of
    retried = asyncio.Event()

    async def status_then_retry(conn: AsyncConnection, flow_id: uuid.UUID) -> object:
        status = await real_status_of(conn, flow_id)
        if not retried.is_set():
            retried.set()
            await orch.RetryPhase(
                orchestrator_pb2.RetryPhaseRequest(name=name, phase=flow_pb2.PHASE_DATA_IMPORT),
                metadata=md(tenant),
            )
        return status

    monkeypatch.setattr(repository, "status_of", status_then_retry)
    watch = orch.WatchFlow(
        orchestrator_pb2.WatchFlowRequest(name=name, after_sequence=failed.history_sequence),
        metadata=md(tenant),
    )
    seen = await asyncio.wait_for(until_imported(watch), 60)
    watch.cancel()
    assert retried.is_set()
    assert seen[0].kind == flow_pb2.FLOW_EVENT_KIND_PHASE_RETRIED, seen
    assert seen[-1].phase_status == flow_pb2.PHASE_STATUS_COMPLETED, seen


async def test_second_incomplete_flow_on_an_engagement_is_refused(stack: Stack) -> None:
    await stack.start_orchestrator()
    tenant = new_tenant()
    orch = stack.orchestrator()
    imp = f"imports/{uuid.uuid4()}"
    first = (await orch.CreateFlow(Flow(imp, allow_concurrent=False), metadata=md(tenant))).flow
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await orch.CreateFlow(Flow(imp, allow_concurrent=False), metadata=md(tenant))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert first.name in (err.value.details() or "")
    await orch.CreateFlow(Flow(imp, allow_concurrent=True), metadata=md(tenant))
    await orch.CancelFlow(orchestrator_pb2.CancelFlowRequest(name=first.name), metadata=md(tenant))
    other = new_tenant()
    await orch.CreateFlow(Flow(imp, allow_concurrent=False), metadata=md(other))


async def test_redelivered_phase_events_change_nothing(stack: Stack) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    imp = await stack.upload(tenant, inventory(30, bad_rows=False))
    name = (await stack.orchestrator().CreateFlow(Flow(imp.name), metadata=md(tenant))).flow.name
    await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_WAITING_FOR_APPROVAL)
    before = await all_events(stack, tenant, name)
    sent = await fetch(
        stack.database_url,
        "SELECT message_id, payload FROM messaging.outbox WHERE source = 'discovery'"
        " AND ordering_key = $1 ORDER BY seq",
        uuid.UUID(name.split("/")[1]),
    )
    events = stack.flow_events()
    for row in [*sent, *reversed(sent)]:
        request = events_pb2.RecordPhaseStatusRequest.FromString(row["payload"])
        for message_id in (str(row["message_id"]), str(uuid.uuid4())):
            r = await events.RecordPhaseStatus(
                request, metadata=(*peer_md(tenant), ("x-message-id", message_id))
            )
            assert not r.applied
    assert await all_events(stack, tenant, name) == before


class SlowValidation:
    """A real phase handler that outlives its timeout."""

    phase: ClassVar[Phase] = Phase.DATA_VALIDATION
    timeout: ClassVar[float] = 0.2

    async def run(self, child: ChildFlow, conn: AsyncConnection) -> PhaseOutcome:
        await conn.execute(text("SELECT pg_sleep(5)"))
        return PhaseOutcome(PhaseStatus.COMPLETED)


async def test_a_phase_over_its_timeout_fails_with_a_clear_reason(stack: Stack) -> None:
    await stack.start_orchestrator()
    await stack.start_discovery(handlers={**HANDLERS, Phase.DATA_VALIDATION: SlowValidation()})
    tenant = new_tenant()
    imp = await stack.upload(tenant, inventory(20, bad_rows=False))
    name = (await stack.orchestrator().CreateFlow(Flow(imp.name), metadata=md(tenant))).flow.name
    failed = await wait_status(stack, tenant, name, flow_pb2.FLOW_STATUS_FAILED)
    error = phase(failed, flow_pb2.PHASE_DATA_VALIDATION).error
    assert error.reason == "PHASE_TIMEOUT"
    assert error.message == "DATA_VALIDATION took longer than 0.2 s"
