"""The load client: flows through every phase, some auto-approved, some approved by a person,
some paused and resumed, some cancelled, a few left waiting or paused; every RPC retried on
the codes a dying replica or a restarting database answer with."""

from __future__ import annotations

import asyncio
import enum
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import grpc

from flowpair.v1 import (
    discovery_pb2,
    discovery_pb2_grpc,
    flow_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
)
from flowpair_shared.domain import FlowStatus
from flowpair_shared.tenancy import Tenant
from tests.support import md, new_tenant

if TYPE_CHECKING:
    from flowpair.v1.discovery_pb2_grpc import DiscoveryServiceAsyncStub
    from flowpair.v1.orchestrator_pb2_grpc import OrchestratorServiceAsyncStub

T = TypeVar("T")

RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
    }
)
# Retried too, but each one is reported: a flowpair server should never answer them.
UNEXPECTED = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL})
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)
S = flow_pb2
TERMINAL = {S.FLOW_STATUS_COMPLETED, S.FLOW_STATUS_FAILED, S.FLOW_STATUS_CANCELLED}


class Scenario(enum.Enum):
    AUTO = "auto-approved"
    APPROVE = "approved"
    PAUSE_RESUME = "paused+resumed"
    PAUSE_APPROVE = "paused at gate+approved"
    CANCEL = "cancelled"
    CANCEL_LATE = "cancelled in the last phases"
    LEAVE_WAITING = "left waiting"
    LEAVE_PAUSED = "left paused"


WEIGHTS = {
    Scenario.AUTO: 30,
    Scenario.APPROVE: 22,
    Scenario.PAUSE_RESUME: 14,
    Scenario.PAUSE_APPROVE: 6,
    Scenario.CANCEL: 10,
    Scenario.CANCEL_LATE: 8,
    Scenario.LEAVE_WAITING: 5,
    Scenario.LEAVE_PAUSED: 5,
}


class Failed(Exception):
    """An RPC failed with a code the scenario does not allow, or retries ran out."""


@dataclass
class Client:
    """Stubs for every replica; each call starts on a random one and moves on when retried."""

    orchestrator_ports: list[int]
    discovery_ports: list[int]
    rng: random.Random
    call_timeout: float = 15.0
    retry_for: float = 180.0
    retries: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    _channels: list[grpc.aio.Channel] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.orch: list[OrchestratorServiceAsyncStub] = [
            orchestrator_pb2_grpc.OrchestratorServiceStub(self._channel(p))
            for p in self.orchestrator_ports
        ]
        self.disc: list[DiscoveryServiceAsyncStub] = [
            discovery_pb2_grpc.DiscoveryServiceStub(self._channel(p)) for p in self.discovery_ports
        ]

    def _channel(self, port: int) -> grpc.aio.Channel:
        ch = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS)
        self._channels.append(ch)
        return ch

    async def close(self) -> None:
        for ch in self._channels:
            await ch.close()

    async def retrying(
        self,
        what: str,
        call: Callable[[int], Awaitable[T]],
        *,
        accept: Callable[[grpc.aio.AioRpcError, int], bool] | None = None,
    ) -> T | grpc.aio.AioRpcError:
        """``call(replica)`` until it answers; a retryable error moves to the next replica
        after a backoff. An error ``accept`` takes (error, attempt) is returned, not raised."""
        start = self.rng.randrange(2)
        deadline = time.monotonic() + self.retry_for
        attempt = 0
        while True:
            try:
                return await call((start + attempt) % 2)
            except grpc.aio.AioRpcError as error:
                code = error.code()
                if accept is not None and accept(error, attempt):
                    return error
                if code not in RETRYABLE or time.monotonic() > deadline:
                    raise Failed(f"{what}: {code.name}: {error.details()}") from error
                self.retries[code.name] += 1
                if code in UNEXPECTED:
                    self.unexpected.append(f"{what}: {code.name}: {error.details()}")
                await asyncio.sleep(
                    min(2.0, 0.05 * 2 ** min(attempt, 6)) * self.rng.uniform(0.5, 1)
                )
                attempt += 1


@dataclass
class FlowRun:
    """One flow's script and what the client saw."""

    index: int
    scenario: Scenario
    tenant: Tenant
    import_name: str
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    name: str = ""
    acknowledged: bool = False
    create_attempts: int = 0
    pause_at: float | None = None
    resume_at: float | None = None
    cancel_at: float | None = None
    cancel_phase: int = 0
    paused: bool = False
    pause_refused: bool = False
    cancelled: bool = False
    cancel_refused: bool = False
    resumes: int = 0
    approved: bool = False
    auto_refused: bool = False
    last_status: int = 0
    done: bool = False
    error: str = ""

    @property
    def auto_approve(self) -> bool:
        return self.scenario in (
            Scenario.AUTO,
            Scenario.PAUSE_RESUME,
            Scenario.LEAVE_PAUSED,
            Scenario.CANCEL_LATE,
        ) or (self.scenario == Scenario.CANCEL and self.index % 2 == 0)

    def expected(self) -> set[int]:
        """The final statuses this flow may legitimately end in."""
        if self.scenario in (Scenario.CANCEL, Scenario.CANCEL_LATE):
            return {S.FLOW_STATUS_CANCELLED} if self.cancelled else {S.FLOW_STATUS_COMPLETED}
        if self.scenario == Scenario.LEAVE_WAITING:
            return {S.FLOW_STATUS_WAITING_FOR_APPROVAL}
        if self.scenario == Scenario.LEAVE_PAUSED and self.paused:
            # An accepted pause lets the phase in flight finish, which may be the last.
            return {S.FLOW_STATUS_PAUSED, S.FLOW_STATUS_COMPLETED}
        return {S.FLOW_STATUS_COMPLETED}


def _precondition(error: grpc.aio.AioRpcError, _attempt: int) -> bool:
    return error.code() == grpc.StatusCode.FAILED_PRECONDITION


class Load:
    """Runs the flows, ``concurrency`` at a time; ``flows_per_engagement`` share a tenant and
    its one upload (``allow_concurrent``), so their inventories meet in the same assets."""

    def __init__(
        self,
        client: Client,
        csv: bytes,
        *,
        flows: int,
        flows_per_engagement: int,
        concurrency: int,
        flow_timeout: float,
        rng: random.Random,
        late_cancels: bool = True,
    ) -> None:
        self.client = client
        self.csv = csv
        self.rng = rng
        self.concurrency = concurrency
        self.flow_timeout = flow_timeout
        self.flows_per_engagement = flows_per_engagement
        scenarios = [s for s in WEIGHTS if late_cancels or s != Scenario.CANCEL_LATE]
        self.runs: list[FlowRun] = []
        self.tenants: list[Tenant] = []
        self.imports: dict[int, str] = {}
        for i in range(flows):
            if i % flows_per_engagement == 0:
                self.tenants.append(new_tenant())
            scenario = rng.choices(scenarios, weights=[WEIGHTS[s] for s in scenarios])[0]
            self.runs.append(FlowRun(i, scenario, self.tenants[-1], ""))
        self.uploads = 0

    # -- calls -------------------------------------------------------------------------------

    async def _upload(self, tenant: Tenant) -> str:
        import_id = uuid.uuid4()

        async def requests() -> AsyncIterator[discovery_pb2.UploadImportDataRequest]:
            yield discovery_pb2.UploadImportDataRequest(
                metadata=discovery_pb2.ImportMetadata(
                    import_id=str(import_id), file_name="chaos.csv"
                )
            )
            yield discovery_pb2.UploadImportDataRequest(chunk=self.csv)

        async def call(r: int) -> discovery_pb2.UploadImportDataResponse:
            return await self.client.disc[r].UploadImportData(
                requests(), metadata=md(tenant), timeout=self.client.call_timeout
            )

        # A retry of an upload that committed unanswered finds it: ALREADY_EXISTS.
        await self.client.retrying(
            "UploadImportData",
            call,
            accept=lambda e, attempt: attempt > 0 and e.code() == grpc.StatusCode.ALREADY_EXISTS,
        )
        self.uploads += 1
        return f"imports/{import_id}"

    async def _create(self, run: FlowRun) -> None:
        flow = orchestrator_pb2.Flow(
            type=S.FLOW_TYPE_DISCOVERY,
            display_name=f"chaos {run.index} {run.scenario.value}",
            auto_approve=run.auto_approve,
            allow_concurrent=True,
        )
        flow.data_import = run.import_name
        request = orchestrator_pb2.CreateFlowRequest(flow=flow, request_id=run.request_id)

        async def call(r: int) -> orchestrator_pb2.CreateFlowResponse:
            run.create_attempts += 1
            return await self.client.orch[r].CreateFlow(
                request, metadata=md(run.tenant), timeout=self.client.call_timeout
            )

        created = await self.client.retrying("CreateFlow", call)
        assert isinstance(created, orchestrator_pb2.CreateFlowResponse)
        run.name = created.flow.name
        run.acknowledged = True

    async def get(self, run: FlowRun) -> orchestrator_pb2.Flow:
        async def call(r: int) -> orchestrator_pb2.GetFlowResponse:
            return await self.client.orch[r].GetFlow(
                orchestrator_pb2.GetFlowRequest(name=run.name),
                metadata=md(run.tenant),
                timeout=self.client.call_timeout,
            )

        got = await self.client.retrying("GetFlow", call)
        assert isinstance(got, orchestrator_pb2.GetFlowResponse)
        return got.flow

    async def _lifecycle(self, run: FlowRun, method: str) -> bool:
        """PauseFlow, ResumeFlow or CancelFlow; False when refused (FAILED_PRECONDITION), which
        after a retry may also mean the first attempt took effect: the caller re-reads."""

        async def call(r: int) -> object:
            stub = self.client.orch[r]
            tenant = md(run.tenant)
            t = self.client.call_timeout
            if method == "PauseFlow":
                return await stub.PauseFlow(
                    orchestrator_pb2.PauseFlowRequest(name=run.name, reason="chaos"),
                    metadata=tenant,
                    timeout=t,
                )
            if method == "ResumeFlow":
                return await stub.ResumeFlow(
                    orchestrator_pb2.ResumeFlowRequest(name=run.name, reason="chaos"),
                    metadata=tenant,
                    timeout=t,
                )
            return await stub.CancelFlow(
                orchestrator_pb2.CancelFlowRequest(name=run.name, reason="chaos"),
                metadata=tenant,
                timeout=t,
            )

        answer = await self.client.retrying(method, call, accept=_precondition)
        return not isinstance(answer, grpc.aio.AioRpcError)

    async def _approve(self, run: FlowRun) -> None:
        """Approve the suggested mapping (waiving what the data lacks), once: a retry first
        looks whether an unanswered attempt already approved it."""
        while True:
            listed = await self._mappings(run)
            if listed.approved:
                run.approved = True
                return
            request = discovery_pb2.UpdateFieldMappingsRequest(
                master_flow=run.name,
                etag=listed.etag,
                approve=True,
                waive_required_attributes=list(listed.missing_required_attributes),
            )

            async def update(
                r: int, request: discovery_pb2.UpdateFieldMappingsRequest = request
            ) -> discovery_pb2.UpdateFieldMappingsResponse:
                return await self.client.disc[r].UpdateFieldMappings(
                    request, metadata=md(run.tenant), timeout=self.client.call_timeout
                )

            # Any refusal (stale etag after an unanswered attempt, already approved) re-lists.
            answer = await self.client.retrying(
                "UpdateFieldMappings",
                update,
                accept=lambda e, _a: (
                    e.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED)
                ),
            )
            if not isinstance(answer, grpc.aio.AioRpcError):
                run.approved = answer.approved
                if run.approved:
                    return
            await asyncio.sleep(0.1)

    async def _mappings(self, run: FlowRun) -> discovery_pb2.ListFieldMappingsResponse:
        async def listing(r: int) -> discovery_pb2.ListFieldMappingsResponse:
            return await self.client.disc[r].ListFieldMappings(
                discovery_pb2.ListFieldMappingsRequest(master_flow=run.name),
                metadata=md(run.tenant),
                timeout=self.client.call_timeout,
            )

        listed = await self.client.retrying("ListFieldMappings", listing)
        assert isinstance(listed, discovery_pb2.ListFieldMappingsResponse)
        return listed

    # -- the script --------------------------------------------------------------------------

    def _schedule(self, run: FlowRun, now: float) -> None:
        if run.scenario in (Scenario.PAUSE_RESUME, Scenario.LEAVE_PAUSED):
            run.pause_at = now + self.rng.uniform(0.0, 1.5)
        if run.scenario == Scenario.CANCEL:
            run.cancel_at = now + self.rng.uniform(0.0, 3.0)
        if run.scenario == Scenario.CANCEL_LATE:
            # Against the last phases: races a phase finishing, or the last event in flight.
            run.cancel_phase = self.rng.choice(
                [S.PHASE_ASSET_INVENTORY, S.PHASE_DEPENDENCY_ANALYSIS]
            )

    async def drive(self, run: FlowRun, timeout: float) -> None:
        """Move the flow along its script until it is where the script leaves it (or
        ``timeout``); may be called again to continue."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            flow = await self.get(run)
            status = run.last_status = flow.status
            now = time.monotonic()
            if status in TERMINAL:
                run.done = True
                return
            late = run.scenario == Scenario.CANCEL_LATE and run.cancel_at is None
            if late and flow.current_phase >= run.cancel_phase:
                run.cancel_at = now
            if run.cancel_at is not None and not run.cancelled and now >= run.cancel_at:
                if await self._lifecycle(run, "CancelFlow"):
                    run.cancelled = True
                else:
                    # Refused: completed already, or an unanswered attempt cancelled it.
                    flow = await self.get(run)
                    if flow.status == S.FLOW_STATUS_CANCELLED:
                        run.cancelled = True
                    elif flow.status != S.FLOW_STATUS_COMPLETED:
                        run.error = f"CancelFlow refused in {FlowStatus(flow.status).name}"
                    else:
                        run.cancel_refused = True
                continue
            pausing = run.pause_at is not None and not run.paused and not run.pause_refused
            if pausing and run.pause_at is not None and now >= run.pause_at:
                if await self._lifecycle(run, "PauseFlow"):
                    run.paused = True
                else:
                    flow = await self.get(run)
                    run.paused = flow.status == S.FLOW_STATUS_PAUSED
                    run.pause_refused = not run.paused
                run.resume_at = time.monotonic() + self.rng.uniform(0.2, 2.0)
                continue
            if status == S.FLOW_STATUS_PAUSED:
                if run.scenario == Scenario.LEAVE_PAUSED:
                    run.done = True
                    return
                if run.scenario == Scenario.PAUSE_APPROVE and not run.approved:
                    await self._approve(run)
                if run.resume_at is not None and now >= run.resume_at:
                    await self._lifecycle(run, "ResumeFlow")
                    run.resumes += 1
                    continue
            elif status == S.FLOW_STATUS_WAITING_FOR_APPROVAL:
                if run.scenario == Scenario.LEAVE_WAITING:
                    run.done = True
                    return
                if run.scenario == Scenario.CANCEL:
                    pass  # the cancel comes
                elif run.scenario == Scenario.PAUSE_APPROVE and not run.paused:
                    run.pause_at = now  # pause at the gate, approve while paused
                    continue
                else:
                    if run.auto_approve:
                        run.auto_refused = True  # the CSV is meant to pass auto-approval
                    if not run.approved:
                        await self._approve(run)
                    # Approval may move the flow on by itself: a refusal is then fine.
                    await self._lifecycle(run, "ResumeFlow")
                    run.resumes += 1
                    continue
            await asyncio.sleep(0.02 if late else 0.3)
        still = FlowStatus(run.last_status).name if run.last_status else "unknown"
        run.error = run.error or f"still {still} after {timeout:.0f}s"

    async def _one(self, run: FlowRun) -> None:
        try:
            await self._create(run)
            self._schedule(run, time.monotonic())
            await self.drive(run, self.flow_timeout)
        except Failed as error:
            run.error = str(error)

    async def run(self) -> None:
        sem = asyncio.Semaphore(self.concurrency)
        upload_lock: dict[int, asyncio.Lock] = {}

        async def one(run: FlowRun) -> None:
            async with sem:
                engagement = run.index // self.flows_per_engagement
                lock = upload_lock.setdefault(engagement, asyncio.Lock())
                async with lock:
                    if engagement not in self.imports:
                        try:
                            self.imports[engagement] = await self._upload(run.tenant)
                        except Failed as error:
                            run.error = str(error)
                            return
                run.import_name = self.imports[engagement]
                await self._one(run)

        await asyncio.gather(*(one(r) for r in self.runs))

    async def finish(self, timeout: float) -> None:
        """After the chaos: drive every flow not yet where its script leaves it once more."""
        todo = [r for r in self.runs if r.acknowledged and not r.done]
        sem = asyncio.Semaphore(self.concurrency)

        async def again(run: FlowRun) -> None:
            async with sem:
                run.error = ""
                try:
                    await self.drive(run, timeout)
                except Failed as error:
                    run.error = str(error)

        await asyncio.gather(*(again(r) for r in todo))
