"""Tracing with OpenTelemetry: one trace from CreateFlow through the outbox to every phase.

``setup`` turns it on for a process (each service's ``main``, each phase worker) from the
standard variables:

- ``OTEL_TRACES_EXPORTER``: ``otlp``, ``console`` or ``none``, comma-separated. Unset, spans
  go to OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``)
  is set and nowhere otherwise: the SDK's own default, OTLP to localhost, would have every
  process without a collector beside it log failed exports.
- OTLP needs an exporter package, which the project does not require:
  ``opentelemetry-exporter-otlp-proto-grpc`` (``pip install 'flowpair[otlp]'``), or
  ``-proto-http`` with ``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf``.
- ``OTEL_SERVICE_NAME`` (default ``flowpair-orchestrator``, ``flowpair-discovery``),
  ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, ``OTEL_EXPORTER_OTLP_*`` and
  ``OTEL_BSP_*`` are read by the SDK itself; ``OTEL_SDK_DISABLED=true`` turns tracing off.

With no exporter nothing is set up: no span is made, no context read or written, and each
hook below costs one test of a module variable.

How the context travels (W3C ``traceparent``/``tracestate``):

1. a call's metadata → the server span of the RPC (``server_span``, in the interceptor);
2. → the headers of every outbox message written under it (``with_context``, in the store)
   and the phase job queued under it (``current``, in the job queue);
3. the relay's delivery of a message is a PRODUCER span whose parent is the stored context,
   and the span's own context replaces the stored one in what is sent (``delivery``): the
   call's metadata, or in a batch the message's own headers;
4. → the peer's span for that message (the interceptor's, or ``server_span`` per message of a
   batch), and so on; a phase job's span (``phase_job``) continues from the context queued
   with it, and the events its phase writes carry that span's.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import grpc
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from flowpair_shared import logs

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger("flowpair.tracing")

FLOW_ID = "flowpair.flow_id"
"""The span attribute naming the flow a span is about (as the logs' ``flow_id`` does)."""

_W3C = TraceContextTextMapPropagator()
_FIELDS = frozenset(_W3C.fields)
# Only `traceparent` is read and carried: a caller's `tracestate` (up to 8 KB, its text logged
# by the parser when malformed) would otherwise ride in every outbox row and call of its flow.
_CARRIED = "traceparent"
_MAX_TRACEPARENT = 128  # version 00 is 55 characters; later versions may append fields
# A server span is an error for these codes only; the others are the caller's mistakes or
# the expected outcomes of a call (OpenTelemetry's semantic conventions for gRPC servers).
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_OTLP_MODULES = {
    "grpc": "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "http": "opentelemetry.exporter.otlp.proto.http.trace_exporter",
}

_tracer: trace.Tracer | None = None
"""The process's tracer; None: tracing is off."""
_provider: TracerProvider | None = None


# -- set-up --------------------------------------------------------------------------------


def setup(service: str, *, processors: Sequence[SpanProcessor] | None = None) -> bool:
    """Trace this process as ``service`` if the environment names an exporter (or with
    ``processors``, which replace the environment's: tests install an in-memory exporter);
    whether tracing is on. Replaces an earlier set-up."""
    shutdown()
    # The SDK (about 0.17 s to import) only where tracing is asked for: every service process
    # and phase worker imports this module.
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from_env = processors is None
    if processors is None:
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return False
        processors = [BatchSpanProcessor(e) for e in _exporters()]
        if not processors:
            return False
    # OTEL_SERVICE_NAME, when set, names every process (the SDK reads it).
    named = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"flowpair-{service}"}
    provider = TracerProvider(resource=Resource.create(named))
    for processor in processors:
        provider.add_span_processor(processor)
    if from_env:
        # For a library traced through the global API; the global provider can be set once
        # per process, so the project's own spans use the tracer kept here instead.
        trace.set_tracer_provider(provider)
    global _tracer, _provider
    _provider, _tracer = provider, provider.get_tracer("flowpair")
    log.info("tracing on", extra={"processors": [type(p).__name__ for p in processors]})
    return True


def shutdown() -> None:
    """Export what is buffered and turn tracing off (at process exit)."""
    global _tracer, _provider
    provider, _tracer, _provider = _provider, None, None
    if provider is not None:
        provider.shutdown()


def enabled() -> bool:
    return _tracer is not None


def _exporters() -> list[SpanExporter]:
    names = os.environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if not names:
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        names = "otlp" if endpoint else "none"
    exporters: list[SpanExporter] = []
    for name in (n.strip().lower() for n in names.split(",")):
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        elif name == "otlp":
            otlp = _otlp()
            if otlp is not None:
                exporters.append(otlp)
        elif name not in ("", "none"):
            log.warning("OTEL_TRACES_EXPORTER names an unknown exporter %r; ignored", name)
    return exporters


def _otlp() -> SpanExporter | None:
    """The OTLP exporter of the protocol asked for (else gRPC's, else HTTP's), if installed;
    it reads its endpoint, headers and certificates from OTEL_EXPORTER_OTLP_* itself."""
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", ""
    )
    kinds: tuple[str, ...] = ("grpc", "http")
    if protocol:
        kinds = ("http",) if protocol.startswith("http") else ("grpc",)
    for kind in kinds:
        try:
            module = importlib.import_module(_OTLP_MODULES[kind])
        except ImportError:
            continue
        return cast(SpanExporter, module.OTLPSpanExporter())
    log.warning(
        "OTLP export asked for, but no OTLP exporter is installed"
        " (pip install 'flowpair[otlp]'); spans are not exported there"
    )
    return None


# -- what travels --------------------------------------------------------------------------


def current() -> dict[str, str] | None:
    """The current span's context as W3C headers; None without one (or tracing off)."""
    if _tracer is None:
        return None
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return {_CARRIED: carrier[_CARRIED]} if _CARRIED in carrier else None


def with_context(headers: Mapping[str, str]) -> Mapping[str, str]:
    """``headers`` carrying the current trace context (a message written now), if any."""
    carrier = current()
    if carrier is None:
        return headers
    return {**_without_context(headers), **carrier}


def _without_context(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in _FIELDS}


def _parent(headers: Iterable[tuple[str, Any]] | Mapping[str, Any] | None) -> Context:
    """The context ``headers`` carry; an empty one (a new trace) if none, never the current
    one, which belongs to whatever runs the code (a relay's loop, a batch's call)."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    carrier = {
        k: v
        for k, v in pairs
        if k == _CARRIED and isinstance(v, str) and len(v) <= _MAX_TRACEPARENT
    }
    return _W3C.extract(carrier, context=Context()) if carrier else Context()


def _rpc_attributes(method: str) -> dict[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


# -- spans ---------------------------------------------------------------------------------


def _name_flow(span: trace.Span) -> None:
    """Name on ``span`` the flow the work turned out to be about, as its logs name it
    (``logs.bind(flow_id=...)``)."""
    flow_id = logs.current().get("flow_id")
    if flow_id:
        span.set_attribute(FLOW_ID, str(flow_id))


class RpcSpan:
    """The server span of one call, or of one message of a batch: current from its start
    until ``end`` (in the task that started it)."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: trace.Span | None) -> None:
        self._span = span
        self._token: Token[Context] | None = None
        if span is not None:
            self._token = context_api.attach(trace.set_span_in_context(span))

    def end(self, code: grpc.StatusCode, *, detach: bool = True) -> None:
        """End the span with the call's status; it names the flow the call turned out to be
        about, as the call's logs do (``logs.bind(flow_id=...)``). A second end is a no-op.
        ``detach=False`` where the end may run in another context than the start (a stream
        closed by the garbage collector): its context ends with it anyway."""
        span, token = self._span, self._token
        if span is None or token is None:
            return
        self._span = self._token = None
        _name_flow(span)
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code in _SERVER_ERRORS:
            span.set_status(Status(StatusCode.ERROR, code.name))
        span.end()
        if detach:
            context_api.detach(token)

    def __enter__(self) -> RpcSpan:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Not ended yet: the handling raised (a call that would have failed UNKNOWN), or the
        # block had no status to give.
        if error is None:
            self.end(grpc.StatusCode.OK)
            return
        if self._span is not None:
            self._span.record_exception(error)
        self.end(grpc.StatusCode.UNKNOWN)


UNTRACED = RpcSpan(None)
"""The span of a call while tracing is off: ending it does nothing."""


def server_span(
    method: str, metadata: Iterable[tuple[str, Any]] | None, *, link_current: bool = False
) -> RpcSpan:
    """Start the server span of ``method`` (``/package.Service/Method``), a child of the
    context in ``metadata``; ``link_current`` links it to the current span (a batch's call,
    which is not its parent: each message continues its own flow's trace)."""
    if _tracer is None:
        return UNTRACED
    links = None
    if link_current:
        here = trace.get_current_span().get_span_context()
        links = [Link(here)] if here.is_valid else None
    return RpcSpan(
        _tracer.start_span(
            method.lstrip("/"),
            context=_parent(metadata),
            kind=SpanKind.SERVER,
            attributes=_rpc_attributes(method),
            links=links,
        )
    )


class Delivery:
    """The relay's delivery of one outbox message: a PRODUCER span, a child of the context
    stored with the message. ``headers`` are the message's, with that span's context in place
    of the stored one, so the peer's handling is the delivery's child."""

    __slots__ = ("_span", "headers")

    def __init__(self, span: trace.Span | None, headers: dict[str, str]) -> None:
        self._span = span
        self.headers = headers

    def end(self, code: grpc.StatusCode) -> None:
        span = self._span
        if span is None:
            return
        self._span = None
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code != grpc.StatusCode.OK:
            # Every failed delivery is one the relay retries or parks: worth seeing.
            span.set_status(Status(StatusCode.ERROR, code.name))
        span.end()


def delivery(
    method: str,
    headers: dict[str, str],
    *,
    flow_id: str,
    message_id: str,
    seq: int,
    attempt: int,
    batch: int = 1,
) -> Delivery:
    if _tracer is None:
        return Delivery(None, headers)
    span = _tracer.start_span(
        "deliver " + method.lstrip("/"),
        context=_parent(headers),
        kind=SpanKind.PRODUCER,
        attributes={
            **_rpc_attributes(method),
            FLOW_ID: flow_id,
            "flowpair.message_id": message_id,
            "flowpair.outbox.seq": seq,
            "flowpair.outbox.attempt": attempt,
            "flowpair.outbox.batch": batch,
        },
    )
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=trace.set_span_in_context(span))
    return Delivery(span, {**_without_context(headers), **carrier})


@contextmanager
def phase_job(
    phase: str, queued: Mapping[str, str] | None, *, job_id: int, attempt: int
) -> Iterator[None]:
    """A phase job's run as a CONSUMER span, current throughout, continuing the context the
    job was queued with (``queued``); it names the flow the job's logs name."""
    if _tracer is None:
        yield
        return
    with _tracer.start_as_current_span(
        f"phase {phase}",
        context=_parent(queued),
        kind=SpanKind.CONSUMER,
        attributes={
            "flowpair.phase": phase,
            "flowpair.job_id": job_id,
            "flowpair.job.attempt": attempt,
        },
    ) as span:
        try:
            yield
        finally:
            _name_flow(span)


def failed(reason: str, message: str) -> None:
    """Mark the current span failed (a phase's failure, which is no exception here)."""
    if _tracer is not None:
        span = trace.get_current_span()
        span.set_status(Status(StatusCode.ERROR, f"{reason}: {message}"))
