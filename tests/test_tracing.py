"""Tracing: one trace from CreateFlow, through both outboxes and relays, to every phase.

Both services run in this process with an in-memory exporter; the spans are read back and
their parents followed. The trace holds together only if the context rides in each outbox
message (and in each phase job) and the relay hands it on: with the context left out of what
the store writes, CreateChildFlow's span starts a trace of its own.
"""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from flowpair.v1 import orchestrator_pb2
from flowpair_shared import tracing
from flowpair_shared.outbox import Relay
from flowpair_shared.server import ServiceApp
from flowpair_shared.tenancy import Tenant
from tests.support import Stack, discovery_flow, eventually, fetch, md, new_tenant, with_relay

EXAMPLE = b"hostname,ip_address\nweb01,10.0.0.1\nweb02,10.0.0.2\n"
ORCHESTRATOR = "flowpair.v1.OrchestratorService/"
CHILD = "flowpair.internal.v1.ChildFlowService/"
EVENTS = "flowpair.internal.v1.FlowEventService/"
BATCH = "flowpair.internal.v1.MessageBatchService/DeliverMessages"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process, exported to memory; off again afterwards, so no other
    test writes trace context into its messages."""
    exporter = InMemorySpanExporter()
    assert tracing.setup("test", processors=[SimpleSpanProcessor(exporter)])
    yield exporter
    tracing.shutdown()


def _named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def _flow_span(spans: Sequence[ReadableSpan], name: str, flow: str) -> ReadableSpan:
    """The one span ``name`` about ``flow`` (``flows/{id}``)."""
    flow_id = flow.split("/")[1]
    found = [s for s in _named(spans, name) if (s.attributes or {}).get(tracing.FLOW_ID) == flow_id]
    assert len(found) == 1, [(s.name, s.attributes) for s in _named(spans, name)]
    return found[0]


def _ancestors(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    """``span``'s parent, its parent's, ... up to the root (every one must be exported)."""
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    chain = []
    while span.parent is not None:
        assert span.parent.span_id in by_id, f"{span.name}: its parent was never exported"
        span = by_id[span.parent.span_id]
        chain.append(span)
    return chain


def _in_order(names: Sequence[str], expected: Sequence[str]) -> bool:
    """Whether ``expected`` occurs in ``names`` in that order (others may come between)."""
    rest = iter(names)
    return all(any(n == e for n in rest) for e in expected)


async def _create(stack: Stack, tenant: Tenant, *, data: bool) -> str:
    """A flow's name: on an uploaded import (``data``), or on one nobody uploaded (its
    DATA_IMPORT fails at once)."""
    if data:
        name, _ = await stack.start_flow(tenant, EXAMPLE)
        return name
    created = await stack.orchestrator().CreateFlow(
        orchestrator_pb2.CreateFlowRequest(flow=discovery_flow()), metadata=md(tenant)
    )
    return created.flow.name


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _relay(app: ServiceApp) -> Relay:
    return next(work for work in app.background if isinstance(work, Relay))


async def test_one_trace_spans_create_flow_the_child_and_every_phase(
    stack: Stack, spans: InMemorySpanExporter
) -> None:
    # Each message in a call of its own here (the batched path has its own test below).
    with_relay(stack, batch_size=1)
    await stack.start_orchestrator()
    await stack.start_discovery()
    tenant = new_tenant()
    flow = await _create(stack, tenant, data=True)

    async def mapped() -> list[ReadableSpan]:
        # ATTRIBUTE_MAPPING is the third phase run; it then waits for an approval.
        done = spans.get_finished_spans()
        return list(done) if _named(done, "phase ATTRIBUTE_MAPPING") else []

    finished = await eventually(mapped, timeout=30)
    create = _flow_span(finished, ORCHESTRATOR + "CreateFlow", flow)
    assert create.kind == SpanKind.SERVER and create.parent is None
    assert create.attributes is not None and create.context is not None
    assert {k: create.attributes[k] for k in ("rpc.system", "rpc.service", "rpc.method")} == {
        "rpc.system": "grpc",
        "rpc.service": "flowpair.v1.OrchestratorService",
        "rpc.method": "CreateFlow",
    }
    assert create.attributes["rpc.grpc.status_code"] == 0
    trace_id = create.context.trace_id

    # The child's creation on discovery: delivered by the orchestrator's relay, in the trace.
    child = _flow_span(finished, CHILD + "CreateChildFlow", flow)
    assert child.kind == SpanKind.SERVER
    assert [s.name for s in _ancestors(child, finished)] == [
        "deliver " + CHILD + "CreateChildFlow",
        ORCHESTRATOR + "CreateFlow",
    ]
    assert _ancestors(child, finished)[-1] is create

    # Every phase run so far, each a descendant of CreateFlow through the events and commands
    # that led to it: INITIALIZATION's event applied, RunPhase, the job, its event applied...
    step = [
        "deliver " + EVENTS + "RecordPhaseStatus",
        EVENTS + "RecordPhaseStatus",
        "deliver " + CHILD + "RunPhase",
        CHILD + "RunPhase",
    ]
    for phase in ("DATA_IMPORT", "DATA_VALIDATION", "ATTRIBUTE_MAPPING"):
        (job,) = _named(finished, f"phase {phase}")
        assert job.kind == SpanKind.CONSUMER and job.context is not None
        assert job.context.trace_id == trace_id, phase
        assert (job.attributes or {}).get(tracing.FLOW_ID) == flow.split("/")[1]
        chain = _ancestors(job, finished)
        assert chain[-1] is create, phase
        names = [s.name for s in reversed(chain)]
        earlier = {
            "DATA_IMPORT": [],
            "DATA_VALIDATION": ["phase DATA_IMPORT"],
            "ATTRIBUTE_MAPPING": ["phase DATA_IMPORT", "phase DATA_VALIDATION"],
        }[phase]
        expected = [ORCHESTRATOR + "CreateFlow", CHILD + "CreateChildFlow", *step]
        for before in earlier:
            expected += [before, *step]
        assert _in_order(names, expected), (phase, names)
        assert names[-1] == CHILD + "RunPhase", (phase, names)

    # Everything about the flow after CreateFlow is in its trace (the upload came before).
    flow_id = flow.split("/")[1]
    about = [s for s in finished if (s.attributes or {}).get(tracing.FLOW_ID) == flow_id]
    assert about and {s.context.trace_id for s in about if s.context} == {trace_id}


async def test_a_batch_keeps_each_message_in_its_own_flows_trace(
    stack: Stack, spans: InMemorySpanExporter
) -> None:
    orchestrator = await stack.start_orchestrator()
    await stack.start_discovery()
    # The orchestrator's relay held, so both flows' CreateChildFlow go in one batch.
    relay = _relay(orchestrator)
    await relay.stop()
    flows = [await _create(stack, new_tenant(), data=False) for _ in range(2)]
    assert await relay.deliver_once() == 2

    finished = spans.get_finished_spans()
    calls = {s.context.span_id for s in _named(finished, BATCH) if s.context is not None}
    traces, linked = set(), set()
    for flow in flows:
        create = _flow_span(finished, ORCHESTRATOR + "CreateFlow", flow)
        child = _flow_span(finished, CHILD + "CreateChildFlow", flow)
        assert create.context is not None and child.context is not None
        delivery, root = _ancestors(child, finished)
        assert root is create
        assert delivery.kind == SpanKind.PRODUCER
        assert (delivery.attributes or {}).get("flowpair.outbox.batch") == 2
        # The call carrying the batch is linked, not a parent.
        assert len(child.links) == 1
        linked.add(child.links[0].context.span_id)
        traces.add(child.context.trace_id)
    assert len(traces) == 2
    assert len(linked) == 1 and linked <= calls  # one DeliverMessages call carried both


async def test_with_tracing_off_nothing_is_written_for_it(stack: Stack) -> None:
    assert not tracing.enabled()
    await stack.start_orchestrator()
    await stack.start_discovery()
    flow = await _create(stack, new_tenant(), data=False)
    flow_id = uuid.UUID(flow.split("/")[1])

    async def ran() -> bool:
        rows = await fetch(
            stack.database_url,
            "SELECT 1 FROM discovery.phase_jobs j JOIN discovery.child_flows c"
            " ON c.id = j.child_flow_id WHERE c.master_flow_id = $1",
            flow_id,
        )
        return bool(rows)

    await eventually(ran)
    headers = await fetch(
        stack.database_url,
        "SELECT DISTINCT jsonb_object_keys(headers) FROM messaging.outbox WHERE ordering_key = $1",
        flow_id,
    )
    assert {r[0] for r in headers} == {
        "x-client-account-id",
        "x-engagement-id",
        "x-user-id",
    }
    contexts = await fetch(
        stack.database_url,
        "SELECT j.trace_context FROM discovery.phase_jobs j JOIN discovery.child_flows c"
        " ON c.id = j.child_flow_id WHERE c.master_flow_id = $1",
        flow_id,
    )
    assert [r[0] for r in contexts] == [None]


def test_exporters_come_from_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    ):
        monkeypatch.delenv(name, raising=False)
    # This process's global provider stays as it was (it can be set once per process).
    monkeypatch.setattr(trace, "set_tracer_provider", lambda _provider: None)
    # Nothing configured: nothing set up, not even the SDK's default OTLP to localhost.
    assert not tracing.setup("orchestrator")
    assert not tracing.enabled()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    try:
        assert tracing.setup("orchestrator")
        assert tracing.enabled()
    finally:
        tracing.shutdown()
    assert not tracing.enabled()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing.setup("orchestrator")
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not tracing.setup("orchestrator")
    # An endpoint alone means OTLP, exported only if an OTLP exporter is installed.
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    installed = [
        p for p in ("grpc", "http") if _installed(f"opentelemetry.exporter.otlp.proto.{p}")
    ]
    expected = ["OTLPSpanExporter"] if installed else []
    assert [type(e).__name__ for e in tracing._exporters()] == expected
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console,none")
    assert [type(e) for e in tracing._exporters()] == [ConsoleSpanExporter]


async def test_a_callers_trace_context_is_continued_but_only_its_traceparent_travels(
    stack: Stack, spans: InMemorySpanExporter
) -> None:
    # A caller's tracestate (up to 8 KB, of its choosing) rode in every outbox row and call
    # of its flow; an oversized traceparent is ignored (a new trace starts).
    await stack.start_orchestrator()
    tenant = new_tenant()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    caller = (
        ("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01"),
        ("tracestate", ",".join(f"k{i}=" + "v" * 200 for i in range(32))),
    )
    created = await stack.orchestrator().CreateFlow(
        orchestrator_pb2.CreateFlowRequest(flow=discovery_flow()),
        metadata=(*md(tenant), *caller),
    )
    headers = await fetch(
        stack.database_url,
        "SELECT headers FROM messaging.outbox WHERE ordering_key = $1",
        uuid.UUID(created.flow.name.split("/")[1]),
    )
    [stored] = [json.loads(h[0]) for h in headers]
    assert "tracestate" not in stored
    assert stored["traceparent"].split("-")[1] == trace_id
    huge = (("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01" + "-x" * 100),)
    await stack.orchestrator().CreateFlow(
        orchestrator_pb2.CreateFlowRequest(flow=discovery_flow()),
        metadata=(*md(tenant), *huge),
    )
    creates = [s for s in spans.get_finished_spans() if s.name.endswith("/CreateFlow")]
    create, last = creates[-2:]
    assert create.context is not None and last.context is not None
    assert f"{create.context.trace_id:032x}" == trace_id
    assert f"{last.context.trace_id:032x}" != trace_id
