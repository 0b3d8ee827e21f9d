"""Sending cases over real channels as raw bytes, and judging every answer."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2, message
from google.rpc import error_details_pb2, status_pb2

from flowpair.v1 import flow_pb2
from tests.fuzzing.generate import NAME_RE, NEXT_PAGE_TOKEN, Case, Pools
from tests.fuzzing.surface import Method

# Codes that say the server broke, not that the request was wrong.
FORBIDDEN = frozenset(
    {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
)
# With every server up, UNAVAILABLE means one did not answer.
DOWN = frozenset({grpc.StatusCode.UNAVAILABLE})
# How a request with bad tenant metadata may be refused (UNAUTHENTICATED and
# PERMISSION_DENIED once bearer tokens are checked too).
METADATA_REFUSALS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    }
)
# Words of a Python exception, traceback, driver or SQL text that a client must never see.
LEAK = re.compile(
    r"<class |Traceback|asyncpg|sqlalchemy|psycopg|File \"|\.py\"|\(Background on this error"
    r"|\[SQL: |\bSQLSTATE\b|\b(?:Value|Type|Key|Attribute|Assertion|Index|Overflow|Lookup|Runtime"
    r"|Name|ZeroDivision|Recursion|UnicodeDecode|UnicodeEncode|Data|Integrity|Programming"
    r"|Operational|Interface|Internal)Error\b|\bException\b|\bDecodeError\b"
)
STATUS_DETAILS_KEY = "grpc-status-details-bin"
PHASE_CRASH = "PHASE_ERROR"
# What the grpc client reports, instead of the server's status, when the server ends a
# client-streaming call (refusing it at once, say) while the client is still writing: the
# client's own write fails and grpc's aio client sets this status itself. Seen about once in
# 10,000 cases under load; it is not an answer of the server.
CLIENT_LOST_STATUS = "Internal error from Core"
UNARY_DEADLINE = 30.0
WATCH_DEADLINE = 0.3
REFUSAL_DEADLINE = 5.0
WATCH_MAX_MESSAGES = 200


@dataclass
class Outcome:
    case: Case
    code: grpc.StatusCode
    details: str
    trailers: tuple[tuple[str, str | bytes], ...]
    responses: list[bytes]
    seconds: float
    # The answer came from our own deadline or cancellation of a stream.
    ours: bool = False


@dataclass
class Failure:
    """One broken promise: ``rule`` names the property, ``summary`` the answer, ``category``
    what makes failures of one rule the same defect (refined later by the server's log)."""

    rule: str
    outcome: Outcome
    summary: str
    category: str

    @property
    def where(self) -> str:
        """Method and case shape: one representative of each is replayed for its cause."""
        c = self.outcome.case
        return f"{c.method.short} ({c.kind}: {shape(c.note)})"


def shape(text: str) -> str:
    """``text`` with the values blanked out, so that similar answers group together."""
    text = re.sub(r"[0-9a-fA-F]{8}-[0-9a-fA-F-]{27}", "<uuid>", text)
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "<…>", text)
    return re.sub(r"\d+", "N", text)[:200]


def _phase_errors(msg: message.Message, out: list[flow_pb2.PhaseError]) -> None:
    """Every PhaseError set anywhere in ``msg``."""
    if isinstance(msg, flow_pb2.PhaseError):
        out.append(msg)
        return
    for f, value in msg.ListFields():
        if f.type != f.TYPE_MESSAGE:
            continue
        for item in value if f.is_repeated else [value]:
            if isinstance(item, message.Message):
                _phase_errors(item, out)


def _identity(b: bytes) -> bytes:
    return b


class Driver:
    """Calls any method with raw bytes (so undecodable requests can be sent too)."""

    def __init__(self, channels: dict[str, grpc.aio.Channel], concurrency: int = 48) -> None:
        self._channels = channels
        self._gate = asyncio.Semaphore(concurrency)
        self._callables: dict[str, Any] = {}

    def _callable(self, method: Method) -> Any:
        found = self._callables.get(method.path)
        if found is not None:
            return found
        channel = self._channels[method.service]
        kwargs: dict[str, Any] = {
            "request_serializer": _identity,
            "response_deserializer": _identity,
        }
        if method.client_streaming and method.server_streaming:
            made: Any = channel.stream_stream(method.path, **kwargs)
        elif method.client_streaming:
            made = channel.stream_unary(method.path, **kwargs)
        elif method.server_streaming:
            made = channel.unary_stream(method.path, **kwargs)
        else:
            made = channel.unary_unary(method.path, **kwargs)
        self._callables[method.path] = made
        return made

    async def send(self, case: Case) -> Outcome:
        async with self._gate:
            return await self._send(case)

    async def _send(self, case: Case) -> Outcome:
        method = case.method
        call_method = self._callable(method)
        started = time.perf_counter()
        responses: list[bytes] = []
        timeout = WATCH_DEADLINE if method.server_streaming else UNARY_DEADLINE
        if case.must_refuse:
            # A refusal comes at once; wait for it even on a stream.
            timeout = max(timeout, REFUSAL_DEADLINE)

        async def stream() -> AsyncIterator[bytes]:
            for payload in case.payloads:
                yield payload

        request: Any = stream() if method.client_streaming else case.payloads[0]
        call = call_method(request, metadata=case.metadata, timeout=timeout)
        ours = False
        try:
            if method.server_streaming:
                async for item in call:
                    responses.append(item)
                    if len(responses) >= WATCH_MAX_MESSAGES:
                        call.cancel()
                        ours = True
                        break
            else:
                responses.append(await call)
        except grpc.aio.AioRpcError as error:
            code = error.code()
            ours = method.server_streaming and code == grpc.StatusCode.DEADLINE_EXCEEDED
            return Outcome(
                case,
                code,
                error.details() or "",
                tuple(error.trailing_metadata() or ()),
                responses,
                time.perf_counter() - started,
                ours,
            )
        except asyncio.CancelledError:
            if not ours:
                raise
        code = await call.code() if not ours else grpc.StatusCode.CANCELLED
        details = (await call.details()) if not ours else "cancelled by the fuzzer"
        trailers = tuple(await call.trailing_metadata() or ()) if not ours else ()
        return Outcome(
            case, code, details or "", trailers, responses, time.perf_counter() - started, ours
        )


def rich_status(outcome: Outcome) -> status_pb2.Status | None:
    for key, value in outcome.trailers:
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return None


def _unpacked(detail: any_pb2.Any) -> str:
    for kind in (
        error_details_pb2.BadRequest,
        error_details_pb2.ErrorInfo,
        error_details_pb2.PreconditionFailure,
    ):
        if detail.Is(kind.DESCRIPTOR):
            found = kind()
            detail.Unpack(found)
            return str(found)
    return detail.type_url


def judge(outcome: Outcome) -> list[Failure]:
    """Every property one answer must have."""
    case, code = outcome.case, outcome.code
    failures: list[Failure] = []

    def fail(rule: str, summary: str, category: str) -> None:
        failures.append(Failure(rule, outcome, summary, category))

    lost = code == grpc.StatusCode.INTERNAL and outcome.details == CLIENT_LOST_STATUS
    if lost and case.method.client_streaming:
        return failures
    if code in FORBIDDEN:
        summary = f"{code.name}: {outcome.details[:300]}"
        fail("no INTERNAL/UNKNOWN/DATA_LOSS", summary, shape(summary))
    elif code in DOWN:
        summary = f"{code.name}: {outcome.details[:300]}"
        fail("servers answer", summary, shape(summary))
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED and not outcome.ours:
        fail("servers answer", f"no answer within {UNARY_DEADLINE}s", "no answer in time")
    elif code == grpc.StatusCode.CANCELLED and not outcome.ours:
        summary = f"CANCELLED by the server: {outcome.details[:200]}"
        fail("servers answer", summary, shape(summary))

    try:
        status = rich_status(outcome)
    except message.DecodeError:
        summary = "grpc-status-details-bin is not a google.rpc.Status"
        fail("well-formed status", summary, summary)
        status = None
    texts = [outcome.details]
    if status is not None:
        if status.code != code.value[0]:
            summary = f"rich status code {status.code} under {code.name}"
            fail("well-formed status", summary, summary)
        texts += [_unpacked(d) for d in status.details]
    leaked = [m.group(0) for t in texts if (m := LEAK.search(t))]
    if leaked:
        category = f"{code.name} details show {leaked[0]!r}"
        fail("no internals in errors", f"{category}: {texts[0][:300]}", category)

    if code == grpc.StatusCode.INVALID_ARGUMENT and case.decodable:
        bad = error_details_pb2.BadRequest()
        found = status is not None and any(
            d.Is(bad.DESCRIPTOR) and d.Unpack(bad) and len(bad.field_violations) > 0
            for d in status.details
        )
        if not found:
            summary = f"no BadRequest detail: {outcome.details[:200]}"
            fail("INVALID_ARGUMENT names the field", summary, shape(summary))

    if code == grpc.StatusCode.OK or outcome.ours:
        errors: list[flow_pb2.PhaseError] = []
        for raw in outcome.responses:
            try:
                _phase_errors(case.method.output.FromString(raw), errors)
            except message.DecodeError:
                summary = "an OK answer is not the method's response message"
                fail("well-formed status", summary, summary)
                break
        # A phase's error is an error message too; PHASE_ERROR is the reason the phase
        # runner gives when a handler raised, the background twin of INTERNAL.
        for reason, text in {(e.reason, e.message) for e in errors}:
            shown = LEAK.search(text)
            if shown is not None:
                category = f"a PhaseError shows {shown.group(0)!r}"
                fail("no internals in errors", f"{category}: {text[:300]}", category)
            if reason == PHASE_CRASH:
                fail("phases do not crash", f"{reason}: {text[:300]}", shape(text))

    if case.must_refuse:
        refusals = METADATA_REFUSALS if case.must_refuse.startswith("bad tenant") else None
        accepted = code == grpc.StatusCode.OK or (outcome.ours and outcome.responses)
        why = re.sub(r"\(x-[a-z-]+ ", "(", case.must_refuse)
        why = re.sub(r"=.*\)", " malformed)", why)
        if accepted:
            summary = f"accepted ({code.name}) despite {case.must_refuse}"
            fail("bad input is refused", summary, f"accepted despite {why}")
        elif refusals is not None and code not in refusals and code not in FORBIDDEN:
            answer = "stream left open" if outcome.ours else code.name
            summary = f"{answer} (not a refusal) for {case.must_refuse}"
            fail("bad input is refused", summary, f"not refused: {why}")
    return failures


@dataclass
class Harvest:
    """Real values found in OK answers, fed back to the fuzzer's pools."""

    pools: Pools
    tokens_seen: int = 0
    names_seen: set[str] = field(default_factory=set)

    def take(self, outcome: Outcome) -> None:
        if outcome.code != grpc.StatusCode.OK and not outcome.ours:
            return
        case = outcome.case
        own = case.tenant_label == "seeded"
        for raw in outcome.responses:
            try:
                msg = case.method.output.FromString(raw)
            except message.DecodeError:
                continue
            token = getattr(msg, NEXT_PAGE_TOKEN, "")
            if token and case.decodable and not case.method.client_streaming:
                self.pools.add_continuation(case.method.path, case.payloads[0], token)
                self.tokens_seen += 1
            self._walk(msg, own)

    def _walk(self, msg: message.Message, own: bool) -> None:
        for f, value in msg.ListFields():
            values = list(value) if f.is_repeated and not isinstance(value, str) else [value]
            for v in values:
                if isinstance(v, message.Message):
                    self._walk(v, own)
                elif isinstance(v, str) and v:
                    if f.name == "etag" and own:
                        self.pools.add(self.pools.etags, v)
                    elif NAME_RE.match(v) and v not in self.names_seen:
                        self.names_seen.add(v)
                        self.pools.add_name(v, own=own)
