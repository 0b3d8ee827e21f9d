"""Bad input never gets INTERNAL or UNKNOWN: each defect a fuzzer found, fixed as a class.

Each test names the class it guards and sends through real servers what the fuzzer sent (and
neighbours of it); unit tests pin the shared rules the servers use (text, UUIDs, tokens,
timestamps, the database-failure map).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import random
import string
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlencode, urlsplit

import asyncpg
import grpc
import pytest
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncConnection

from discovery_svc.domain.model import ChildFlow
from discovery_svc.phases import HANDLERS
from discovery_svc.phases.base import PhaseOutcome
from flowpair.internal.v1 import flow_event_service_pb2 as events_pb2
from flowpair.v1 import discovery_pb2, flow_pb2, orchestrator_pb2
from flowpair_shared.domain import Phase
from flowpair_shared.tenancy import Tenant
from tests import credentials
from tests.shared.test_outbox_relay import (  # noqa: F401  (fixtures)
    SETTINGS,
    Peer,
    Relays,
    engine,
    relays,
    write,
)
from tests.support import (
    ROOT,
    Stack,
    discovery_flow,
    eventually,
    fetch,
    fetchval,
    free_port,
    md,
    new_tenant,
    peer_md,
    with_relay,
)
from tests.test_validation_and_tenancy import invalid

SAMPLE = (ROOT / "examples" / "cmdb_export.csv").read_bytes()
TERMINAL = {flow_pb2.FLOW_STATUS_COMPLETED, flow_pb2.FLOW_STATUS_FAILED}


@pytest.fixture
async def servers(stack: Stack) -> Stack:
    await stack.start_orchestrator()
    await stack.start_discovery()
    return stack


async def create(stack: Stack, tenant: Tenant, **kw: Any) -> orchestrator_pb2.Flow:
    request = orchestrator_pb2.CreateFlowRequest(flow=discovery_flow(**kw))
    return (await stack.orchestrator().CreateFlow(request, metadata=md(tenant))).flow


async def get_flow(stack: Stack, tenant: Tenant, name: str) -> orchestrator_pb2.Flow:
    request = orchestrator_pb2.GetFlowRequest(name=name)
    return (await stack.orchestrator().GetFlow(request, metadata=md(tenant))).flow


async def settles(stack: Stack, tenant: Tenant, name: str, timeout: float = 60) -> int:
    """The flow's status once it is COMPLETED or FAILED."""

    async def status() -> int | None:
        s = (await get_flow(stack, tenant, name)).status
        return s if s in TERMINAL else None

    result = await eventually(status, timeout=timeout)
    assert result is not None
    return result


async def code_of(call: Callable[[], Awaitable[Any]]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call()
    return err.value.code(), err.value.details() or ""


def fingerprint(query: str) -> str:
    """What the services bind a token to (a forger can compute it too)."""
    return hashlib.sha256(query.encode()).hexdigest()[:16]


def forged(body: dict[str, Any], query: str) -> str:
    """A page token as a client can make one without the secret (the old unsigned format)."""
    return base64.urlsafe_b64encode(json.dumps({**body, "q": fingerprint(query)}).encode()).decode()


# -- 1. NUL anywhere in a request's strings ------------------------------------------------


async def test_nul_in_any_string_field_is_invalid_argument_naming_the_field(
    servers: Stack,
) -> None:
    orch, disc, tenant = servers.orchestrator(), servers.discovery(), new_tenant()
    meta = md(tenant)
    flow = await create(servers, tenant)
    lifecycle: list[tuple[Callable[..., Awaitable[Any]], Any]] = [
        (orch.PauseFlow, orchestrator_pb2.PauseFlowRequest(name=flow.name, reason="\x00")),
        (orch.CancelFlow, orchestrator_pb2.CancelFlowRequest(name=flow.name, reason="a\x00b")),
        (orch.ResumeFlow, orchestrator_pb2.ResumeFlowRequest(name=flow.name, reason="\x00")),
    ]
    for call, request in lifecycle:
        v = await invalid(lambda: call(request, metadata=meta))  # noqa: B023
        assert set(v) == {"reason"}, v
        assert "NUL" in v["reason"]
    # The environment filter is an enum (it was free text): an undefined number is refused.
    v = await invalid(
        lambda: disc.ListAssets(
            discovery_pb2.ListAssetsRequest(environment=discovery_pb2.Environment.ValueType(999)),
            metadata=meta,
        )
    )
    assert set(v) == {"environment"}
    v = await invalid(
        lambda: orch.ListFlows(
            orchestrator_pb2.ListFlowsRequest(page_token="abc\x00"), metadata=meta
        )
    )
    assert set(v) == {"page_token"}
    # Nested, repeated and several at once: every path is named.
    nested = orchestrator_pb2.CreateFlowRequest(flow=discovery_flow(display_name="x\x00"))
    v = await invalid(lambda: orch.CreateFlow(nested, metadata=meta))
    assert set(v) == {"flow.display_name"}
    updates = discovery_pb2.UpdateFieldMappingsRequest(
        master_flow=flow.name,
        etag="\x00",
        updates=[
            discovery_pb2.FieldMappingUpdate(source_column="ok", approve=True),
            discovery_pb2.FieldMappingUpdate(source_column="a\x00", remap_to="host\x00name"),
        ],
        waive_required_attributes=["memory_gb", "\x00"],
    )
    v = await invalid(lambda: disc.UpdateFieldMappings(updates, metadata=meta))
    assert set(v) == {
        "etag",
        "updates[1].source_column",
        "updates[1].remap_to",
        "waive_required_attributes[1]",
    }

    async def upload() -> AsyncIterator[discovery_pb2.UploadImportDataRequest]:
        meta_ = discovery_pb2.ImportMetadata(file_name="inventory\x00.csv")
        yield discovery_pb2.UploadImportDataRequest(metadata=meta_)
        yield discovery_pb2.UploadImportDataRequest(chunk=b"a,b\n1,2\n")

    v = await invalid(lambda: disc.UploadImportData(upload(), metadata=meta))
    assert set(v) == {"metadata.file_name"}
    # Nothing reached the flow: no pause, resume or cancel was recorded.
    assert (await get_flow(servers, tenant, flow.name)).history_sequence == flow.history_sequence


async def test_nul_in_an_internal_event_is_invalid_argument(servers: Stack) -> None:
    event = flow_pb2.PhaseStatusEvent(
        flow=f"flows/{uuid.uuid4()}",
        child_flow=f"childFlows/{uuid.uuid4()}",
        phase=flow_pb2.PHASE_DATA_IMPORT,
        status=flow_pb2.PHASE_STATUS_FAILED,
        sequence=2,
        occur_time=timestamp_pb2.Timestamp(seconds=1_700_000_000),
        error=flow_pb2.PhaseError(reason="X", message="bad\x00"),
    )
    request = events_pb2.RecordPhaseStatusRequest(event=event)
    v = await invalid(
        lambda: servers.flow_events().RecordPhaseStatus(request, metadata=peer_md(new_tenant()))
    )
    assert set(v) == {"event.error.message"}


def test_the_nul_walker_names_map_entries_and_stops_early() -> None:
    from flowpair_shared.inputs import MAX_NUL_VIOLATIONS, nul_violations

    asset = discovery_pb2.Asset(
        display_name="fine", attributes={"k\x00": "v", "rack": "r\x00"}, source_rows=["a", "\x00"]
    )
    paths = {v.field for v in nul_violations(asset)}
    assert paths == {'attributes["k\\0"] (key)', 'attributes["rack"]', "source_rows[1]"}
    many = discovery_pb2.Asset(source_rows=["\x00"] * 1000)
    assert len(nul_violations(many)) == MAX_NUL_VIOLATIONS
    assert not nul_violations(discovery_pb2.UploadImportDataRequest(chunk=b"\x00\x00"))


# -- 2. Page tokens are opaque and tamper-evident --------------------------------------------


async def test_forged_and_tampered_page_tokens_are_invalid_argument(servers: Stack) -> None:
    orch, disc, tenant = servers.orchestrator(), servers.discovery(), new_tenant()
    meta = md(tenant)
    flows = [await create(servers, tenant) for _ in range(3)]
    flow_id = flows[0].name.split("/")[1]
    forgeries: list[tuple[Callable[..., Awaitable[Any]], Any]] = [
        (
            orch.ListFlowEvents,
            orchestrator_pb2.ListFlowEventsRequest(
                name=flows[0].name, page_token=forged({"after": 2**63}, flow_id)
            ),
        ),
        (
            disc.ListDependencies,
            discovery_pb2.ListDependenciesRequest(page_token=forged({"after": 2**63}, "")),
        ),
        (
            orch.ListFlows,
            orchestrator_pb2.ListFlowsRequest(
                page_token=forged({"t": "9999-12-31T23:59:59-14:00", "id": str(uuid.uuid4())}, "")
            ),
        ),
        (
            orch.ListFlows,
            orchestrator_pb2.ListFlowsRequest(
                page_token=forged({"t": "2024-01-01T00:00:00+00:00", "id": 5}, "")
            ),
        ),
        (
            disc.ListAssets,
            discovery_pb2.ListAssetsRequest(
                page_token=forged({"name": "a\x00", "id": str(uuid.uuid4())}, "|")
            ),
        ),
        (
            orch.ListFlowEvents,
            orchestrator_pb2.ListFlowEventsRequest(
                name=flows[0].name, page_token=forged({"after": 1}, flow_id)
            ),
        ),
    ]
    for call, request in forgeries:
        v = await invalid(lambda: call(request, metadata=meta))  # noqa: B023
        assert set(v) == {"page_token"}, (request, v)

    # A real token works; the same token edited, truncated, or used elsewhere does not.
    first = await orch.ListFlows(orchestrator_pb2.ListFlowsRequest(page_size=1), metadata=meta)
    token = first.next_page_token
    assert token
    second = await orch.ListFlows(
        orchestrator_pb2.ListFlowsRequest(page_size=1, page_token=token), metadata=meta
    )
    assert second.flows[0].name != first.flows[0].name
    payload, _, mac = token.partition(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["id"] = str(uuid.uuid4())
    edited = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    for bad in (f"{edited}.{mac}", token[:-2], token + "A", token.replace(".", ""), "x" * 5000):
        request = orchestrator_pb2.ListFlowsRequest(page_size=1, page_token=bad)
        v = await invalid(lambda: orch.ListFlows(request, metadata=meta))  # noqa: B023
        assert set(v) == {"page_token"}
    events = orchestrator_pb2.ListFlowEventsRequest(name=flows[0].name, page_token=token)
    v = await invalid(lambda: orch.ListFlowEvents(events, metadata=meta))
    assert set(v) == {"page_token"}
    # Another tenant may hold the token: it reveals nothing (its position only, its query).
    other = await orch.ListFlows(
        orchestrator_pb2.ListFlowsRequest(page_size=1, page_token=token), metadata=md(new_tenant())
    )
    assert not other.flows


async def test_verified_tokens_are_still_range_checked_and_keys_differ() -> None:
    from flowpair_shared.errors import InvalidArgument
    from flowpair_shared.pagination import PageTokens

    tokens = PageTokens(key=b"k" * 32)
    offsets: list[dict[str, Any]] = [{"after": 2**63}, {"after": -1}, {"after": True}]
    for body in [*offsets, {"after": 1.5}]:
        sealed = await tokens._seal(body, "q")
        with pytest.raises(InvalidArgument):
            await tokens.decode_offset(sealed, "q")
    positions: list[dict[str, Any]] = [
        {"t": "9999-12-31T23:59:59-14:00", "id": str(uuid.uuid4())},
        {"t": "2024-01-01T00:00:00", "id": str(uuid.uuid4())},  # naive
        {"t": "2024-01-01T00:00:00+00:00", "id": 5},
        {"t": "2024-01-01T00:00:00+00:00", "id": "not-a-uuid"},
    ]
    for body in positions:
        sealed = await tokens._seal(body, "q")
        with pytest.raises(InvalidArgument):
            await tokens.decode(sealed, "q")
    sealed = await tokens._seal({"name": "n" * 257, "id": str(uuid.uuid4())}, "q")
    with pytest.raises(InvalidArgument):
        await tokens.decode_named(sealed, "q")
    good = await tokens.encode_offset(41, "q")
    assert await tokens.decode_offset(good, "q") == 41
    with pytest.raises(InvalidArgument):
        await PageTokens(key=b"j" * 32).decode_offset(good, "q")
    with pytest.raises(InvalidArgument):
        await tokens.decode_offset(good, "other query")


async def test_page_token_secret_is_shared_through_the_database_or_the_environment(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flowpair_shared.db import create_engine
    from flowpair_shared.errors import InvalidArgument
    from flowpair_shared.pagination import SECRET_ENV, PageTokens

    monkeypatch.delenv(SECRET_ENV, raising=False)
    pool = create_engine(database_url, pool_size=2)
    try:
        replica_a, replica_b = PageTokens(pool), PageTokens(pool)
        token = await replica_a.encode_offset(7, "q")
        assert await replica_b.decode_offset(token, "q") == 7
        stored = await fetchval(database_url, "SELECT length(value) FROM messaging.secrets")
        assert stored >= 16
        monkeypatch.setenv(SECRET_ENV, "an operator's own secret")
        overridden = PageTokens(pool)
        with pytest.raises(InvalidArgument, match="page_token"):
            await overridden.decode_offset(token, "q")
        assert await overridden.decode_offset(await overridden.encode_offset(3, "q"), "q") == 3
        monkeypatch.setenv(SECRET_ENV, "short")
        with pytest.raises(SystemExit):
            PageTokens(pool)
    finally:
        await pool.dispose()


# -- 3. Timestamps out of range ----------------------------------------------------------------


async def test_out_of_range_timestamps_are_invalid_argument(servers: Stack) -> None:
    events = servers.flow_events()
    for seconds, nanos in ((2**40, 0), (0, -1), (0, 10**9), (-(2**40), 0), (253_402_300_800, 0)):
        event = flow_pb2.PhaseStatusEvent(
            flow=f"flows/{uuid.uuid4()}",
            child_flow=f"childFlows/{uuid.uuid4()}",
            phase=flow_pb2.PHASE_DATA_IMPORT,
            status=flow_pb2.PHASE_STATUS_RUNNING,
            sequence=2,
            occur_time=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos),
        )
        request = events_pb2.RecordPhaseStatusRequest(event=event)
        v = await invalid(
            lambda: events.RecordPhaseStatus(request, metadata=peer_md(new_tenant()))  # noqa: B023
        )
        assert set(v) == {"event.occur_time"}, (seconds, nanos, v)


def test_the_timestamp_converter_accepts_exactly_the_documented_range() -> None:
    from flowpair_shared.convert import from_timestamp
    from flowpair_shared.errors import Validator

    for seconds, nanos in ((-62_135_596_800, 0), (253_402_300_799, 999_999_999), (0, 0)):
        v = Validator()
        assert from_timestamp(timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos), "t", v)
        assert not v.violations
    for seconds, nanos in ((-62_135_596_801, 0), (253_402_300_800, 0), (0, -1), (0, 10**9)):
        v = Validator()
        assert from_timestamp(timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos), "t", v) is None
        assert [x.field for x in v.violations] == ["t"]


# -- 4. Undecodable request bytes ------------------------------------------------------------


def _identity(b: bytes) -> bytes:
    return b


async def test_undecodable_request_bytes_are_invalid_argument_without_internals(
    servers: Stack,
) -> None:
    meta = md(new_tenant())
    garbage = (b"\xff\xff\xff", b"\x0a\x05abc")  # not protobuf; truncated
    unary = {
        servers.orchestrator_port: (
            "/flowpair.v1.OrchestratorService/GetFlow",
            "/flowpair.v1.OrchestratorService/CreateFlow",
            "/flowpair.v1.OrchestratorService/PauseFlow",
        ),
        servers.discovery_port: (
            "/flowpair.v1.DiscoveryService/GetImport",
            "/flowpair.v1.DiscoveryService/ListAssets",
        ),
    }

    def check(code: grpc.StatusCode, details: str) -> None:
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
        assert "not a valid serialized flowpair." in details
        for internal in ("DecodeError", "class", "Traceback", "Unexpected"):
            assert internal not in details

    for port, methods in unary.items():
        channel = servers.channel(port)
        for method in methods:
            call = channel.unary_unary(
                method, request_serializer=_identity, response_deserializer=_identity
            )
            for data in garbage:
                check(*await code_of(lambda: call(data, metadata=meta)))  # noqa: B023
    # The internal ports, called by the right peer.
    for port, server, peer, method in (
        (
            servers.orchestrator_internal_port,
            "orchestrator",
            "discovery",
            "/flowpair.internal.v1.FlowEventService/RecordPhaseStatus",
        ),
        (
            servers.discovery_internal_port,
            "discovery",
            "orchestrator",
            "/flowpair.internal.v1.ChildFlowService/CreateChildFlow",
        ),
    ):
        internal_channel = credentials.internal_channel(port, server, peer)
        servers.channels.append(internal_channel)
        call = internal_channel.unary_unary(
            method, request_serializer=_identity, response_deserializer=_identity
        )
        for data in garbage:
            check(*await code_of(lambda: call(data, metadata=peer_md(new_tenant()))))  # noqa: B023
    orch = servers.channel(servers.orchestrator_port)
    get_flow_ = orch.unary_unary(
        "/flowpair.v1.OrchestratorService/GetFlow",
        request_serializer=_identity,
        response_deserializer=_identity,
    )
    check(*await code_of(lambda: get_flow_(b"\x0a\x02\xff\xfe", metadata=meta)))  # not UTF-8
    watch = orch.unary_stream(
        "/flowpair.v1.OrchestratorService/WatchFlow",
        request_serializer=_identity,
        response_deserializer=_identity,
    )

    async def read_all() -> None:
        async for _ in watch(b"\xff\xff\xff", metadata=meta):
            pass

    check(*await code_of(read_all))
    upload = servers.channel(servers.discovery_port).stream_unary(
        "/flowpair.v1.DiscoveryService/UploadImportData",
        request_serializer=_identity,
        response_deserializer=_identity,
    )
    good_first = discovery_pb2.UploadImportDataRequest(
        metadata=discovery_pb2.ImportMetadata(file_name="x.csv")
    ).SerializeToString()
    chunk = discovery_pb2.UploadImportDataRequest(chunk=b"a,b\n1,2\n").SerializeToString()
    for stream in ([b"\xff\xff\xff"], [good_first, chunk, b"\xff\xff\xff", chunk]):

        async def send(items: list[bytes] = stream) -> AsyncIterator[bytes]:
            for item in items:
                yield item

        check(*await code_of(lambda: upload(send(), metadata=meta)))
    assert await fetchval(servers.database_url, "SELECT count(*) FROM discovery.imports") == 0
    # Health and reflection are the framework's, and refuse garbage the same way.
    health = orch.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=_identity,
        response_deserializer=_identity,
    )
    code, details = await code_of(lambda: health(b"\xff\xff\xff"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details


# -- 5. Tenant headers -------------------------------------------------------------------------


async def test_duplicated_and_unsafe_tenant_headers_are_invalid_argument(servers: Stack) -> None:
    orch = servers.orchestrator()
    tenant = new_tenant()
    request = orchestrator_pb2.ListFlowsRequest()
    good = md(tenant)
    twice_equal = (*good, ("x-client-account-id", str(tenant.client_account_id)))
    v = await invalid(lambda: orch.ListFlows(request, metadata=twice_equal))
    assert set(v) == {"metadata.x-client-account-id"}
    assert "once" in v["metadata.x-client-account-id"]
    twice_different = (*good, ("x-engagement-id", str(uuid.uuid4())))
    v = await invalid(lambda: orch.ListFlows(request, metadata=twice_different))
    assert set(v) == {"metadata.x-engagement-id"}
    unsafe = (
        str(uuid.UUID(int=0)),
        str(uuid.UUID(int=2**128 - 1)),
        "{" + str(uuid.uuid4()) + "}",
        "urn:uuid:" + str(uuid.uuid4()),
        uuid.uuid4().hex,
        "00000000-0000-0000-c000-000000000046",  # a COM GUID: not RFC 4122's variant
    )
    for bad in unsafe:
        headers = dict(good)
        headers["x-engagement-id"] = bad
        v = await invalid(lambda: orch.ListFlows(request, metadata=tuple(headers.items())))  # noqa: B023
        assert set(v) == {"metadata.x-engagement-id"}, (bad, v)
    # The user is the token's principal: another user id is refused, however spelled ...
    for bad in unsafe:
        headers = dict(good)
        headers["x-user-id"] = bad
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await orch.ListFlows(request, metadata=tuple(headers.items()))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, bad
    # ... and the principal's own is fine once, in any case, but not twice.
    headers = dict(good)
    headers["x-user-id"] = str(tenant.user_id).upper()
    await orch.ListFlows(request, metadata=tuple(headers.items()))
    v = await invalid(
        lambda: orch.ListFlows(request, metadata=(*good, ("x-user-id", str(tenant.user_id))))
    )
    assert set(v) == {"metadata.x-user-id"}
    # On the internal port the peer sends all three; the same rules hold for each.
    events = servers.flow_events()
    for header in ("x-client-account-id", "x-engagement-id", "x-user-id"):
        for bad in unsafe[:2]:
            headers = dict(peer_md(tenant))
            headers[header] = bad
            v = await invalid(
                lambda: events.RecordPhaseStatus(
                    events_pb2.RecordPhaseStatusRequest(),
                    metadata=tuple(headers.items()),  # noqa: B023
                )
            )
            assert f"metadata.{header}" in v, (header, bad, v)


def test_tenant_from_metadata_keeps_its_contract() -> None:
    from flowpair_shared.errors import InvalidArgument
    from flowpair_shared.tenancy import tenant_from_metadata

    tenant = new_tenant()
    assert tenant_from_metadata([*md(tenant), ("other", "x"), ("other", "y")]) == tenant
    assert tenant_from_metadata([(k, v.encode()) for k, v in md(tenant)]) == tenant
    with pytest.raises(InvalidArgument) as err:
        tenant_from_metadata([*md(tenant), ("x-user-id", str(tenant.user_id))])
    assert [v.field for v in err.value.violations] == ["metadata.x-user-id"]
    with pytest.raises(InvalidArgument) as err:
        tenant_from_metadata(None)
    assert len(err.value.violations) == 3


# -- 6. Control characters in free text ------------------------------------------------------


async def test_control_characters_in_free_text_are_invalid_argument(servers: Stack) -> None:
    orch, disc, tenant = servers.orchestrator(), servers.discovery(), new_tenant()
    meta = md(tenant)
    for bad in (
        "a\x01b",
        "tab\there",
        "two\nlines",
        "del\x7f",
        "nel\x85",
        "\u202egnp.exe",
        "a\u2028b",
    ):
        request = orchestrator_pb2.CreateFlowRequest(flow=discovery_flow(display_name=bad))
        v = await invalid(lambda: orch.CreateFlow(request, metadata=meta))  # noqa: B023
        assert set(v) == {"flow.display_name"}, (bad, v)
    assert not (await orch.ListFlows(orchestrator_pb2.ListFlowsRequest(), metadata=meta)).flows
    flow = await create(servers, tenant, display_name="Wave 1 — Zürich ✓")
    assert flow.display_name == "Wave 1 — Zürich ✓"
    # A reason may span lines (line feeds, tabs), and nothing else.
    paused = await orch.PauseFlow(
        orchestrator_pb2.PauseFlowRequest(name=flow.name, reason="waiting for:\n\t- the CAB"),
        metadata=meta,
    )
    assert paused.flow.status == flow_pb2.FLOW_STATUS_PAUSED
    for bad in ("esc\x1b[31m", "cr\r", "bell\x07", "\u2066hidden\u2069"):
        request_ = orchestrator_pb2.ResumeFlowRequest(name=flow.name, reason=bad)
        v = await invalid(lambda: orch.ResumeFlow(request_, metadata=meta))  # noqa: B023
        assert set(v) == {"reason"}, (bad, v)
    v = await invalid(
        lambda: orch.ListFlows(
            orchestrator_pb2.ListFlowsRequest(filter="status = RUNNING\x0b"), metadata=meta
        )
    )
    assert set(v) == {"filter"}
    # So is a negative one (open enums carry any int32 on the wire).
    v = await invalid(
        lambda: disc.ListAssets(
            discovery_pb2.ListAssetsRequest(asset_type=discovery_pb2.AssetType.ValueType(-3)),
            metadata=meta,
        )
    )
    assert set(v) == {"asset_type"}

    async def upload(name: str) -> AsyncIterator[discovery_pb2.UploadImportDataRequest]:
        yield discovery_pb2.UploadImportDataRequest(
            metadata=discovery_pb2.ImportMetadata(file_name=name)
        )
        yield discovery_pb2.UploadImportDataRequest(chunk=b"a,b\n1,2\n")

    v = await invalid(lambda: disc.UploadImportData(upload("a\nb.csv"), metadata=meta))
    assert set(v) == {"metadata.file_name"}
    assert await fetchval(servers.database_url, "SELECT count(*) FROM discovery.imports") == 0


def test_the_text_rule() -> None:
    from flowpair_shared.errors import Validator
    from flowpair_shared.inputs import check_text

    def problems(value: str, **kw: Any) -> list[str]:
        v = Validator()
        check_text(value, "f", v, **{"max_length": 10, **kw})
        return [x.description for x in v.violations]

    assert problems("ok ünïcödé"[:10]) == []
    assert problems("x" * 11) == ["must be at most 10 characters, got 11"]
    assert "U+0009" in problems("a\tb")[0]
    assert problems("a\tb\nc", multiline=True) == []
    assert "U+000D" in problems("a\r\nb", multiline=True)[0]
    for c in ("\x00", "\x1f", "\x7f", "\x80", "\x9f", "\u2028", "\u2029", "\u202a", "\u2069"):
        assert problems(f"a{c}", multiline=True), repr(c)


def test_custom_attribute_names_are_matched_whole() -> None:
    from discovery_svc.domain.mapping_set import FieldMapping, MappingSet, State, Update
    from flowpair_shared.errors import InvalidArgument

    mapping = MappingSet((FieldMapping(1, "Rack", None, 0.0, "", State.UNMAPPED),), 1, False, 0.85)
    with pytest.raises(InvalidArgument):
        mapping.updated(mapping.etag, [Update("Rack", custom_attribute="rack\n")], approve=False)
    assert mapping.updated(mapping.etag, [Update("Rack", custom_attribute="rack")], approve=False)


# -- 7. Client-chosen ids reveal nothing across tenants ----------------------------------------


async def test_client_chosen_ids_behave_the_same_whatever_other_tenants_use(
    servers: Stack,
) -> None:
    owner, stranger = new_tenant(), new_tenant()
    disc, orch = servers.discovery(), servers.orchestrator()
    import_id = uuid.uuid4()
    mine = await servers.upload(owner, b"host,ip\na,10.0.0.1\n", import_id=import_id)
    # The same id in another tenant is just a fresh id there: no ALREADY_EXISTS, no leak.
    theirs = await servers.upload(
        stranger, b"host,ip\nb,10.0.0.2\nc,10.0.0.3\n", import_id=import_id
    )
    assert mine.name == theirs.name == f"imports/{import_id}"
    assert (mine.row_count, theirs.row_count) == (1, 2)
    for tenant, rows in ((owner, 1), (stranger, 2)):
        got = await disc.GetImport(
            discovery_pb2.GetImportRequest(name=f"imports/{import_id}"), metadata=md(tenant)
        )
        assert got.data_import.row_count == rows
    # Within a tenant the id is taken.
    code, details = await code_of(lambda: servers.upload(owner, b"host\nz\n", import_id=import_id))
    assert code == grpc.StatusCode.ALREADY_EXISTS, details
    # request_id is per tenant too: the stranger's retry key makes the stranger's own flow.
    request_id = str(uuid.uuid4())

    async def create_with(tenant: Tenant) -> str:
        flow = discovery_flow(import_id=import_id)
        request = orchestrator_pb2.CreateFlowRequest(flow=flow, request_id=request_id)
        return (await orch.CreateFlow(request, metadata=md(tenant))).flow.name

    first = await create_with(owner)
    assert await create_with(owner) == first
    assert await create_with(stranger) not in (first, "")


async def test_another_tenants_resources_are_not_found(servers: Stack) -> None:
    owner, stranger = new_tenant(), new_tenant()
    disc, orch = servers.discovery(), servers.orchestrator()
    uploaded = await servers.upload(owner, SAMPLE)
    flow_ = orchestrator_pb2.Flow(
        type=flow_pb2.FLOW_TYPE_DISCOVERY, auto_approve=True, allow_concurrent=True
    )
    flow_.data_import = uploaded.name
    name = (
        await orch.CreateFlow(orchestrator_pb2.CreateFlowRequest(flow=flow_), metadata=md(owner))
    ).flow.name
    assert await settles(servers, owner, name) == flow_pb2.FLOW_STATUS_COMPLETED
    assets = await disc.ListAssets(discovery_pb2.ListAssetsRequest(), metadata=md(owner))
    asset = assets.assets[0].name
    child = (
        await disc.GetChildFlow(
            discovery_pb2.GetChildFlowRequest(master_flow=name), metadata=md(owner)
        )
    ).child_flow.name
    them = md(stranger)

    async def watch() -> None:
        async for _ in orch.WatchFlow(orchestrator_pb2.WatchFlowRequest(name=name), metadata=them):
            pass

    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: disc.GetImport(discovery_pb2.GetImportRequest(name=uploaded.name), metadata=them),
        lambda: disc.GetAsset(discovery_pb2.GetAssetRequest(name=asset), metadata=them),
        lambda: orch.GetFlow(orchestrator_pb2.GetFlowRequest(name=name), metadata=them),
        lambda: orch.ListFlowEvents(
            orchestrator_pb2.ListFlowEventsRequest(name=name), metadata=them
        ),
        watch,
        lambda: orch.PauseFlow(orchestrator_pb2.PauseFlowRequest(name=name), metadata=them),
        lambda: orch.CancelFlow(orchestrator_pb2.CancelFlowRequest(name=name), metadata=them),
        lambda: disc.GetChildFlow(discovery_pb2.GetChildFlowRequest(name=child), metadata=them),
        lambda: disc.GetChildFlow(
            discovery_pb2.GetChildFlowRequest(master_flow=name), metadata=them
        ),
        lambda: disc.GetDataProfile(
            discovery_pb2.GetDataProfileRequest(master_flow=name), metadata=them
        ),
        lambda: disc.ListFieldMappings(
            discovery_pb2.ListFieldMappingsRequest(master_flow=name), metadata=them
        ),
        lambda: disc.UpdateFieldMappings(
            discovery_pb2.UpdateFieldMappingsRequest(master_flow=name, etag='W/"1"', approve=True),
            metadata=them,
        ),
    ]
    for call in calls:
        code, details = await code_of(call)
        assert code == grpc.StatusCode.NOT_FOUND, details
    listed = await disc.ListDependencies(
        discovery_pb2.ListDependenciesRequest(asset=asset), metadata=them
    )
    assert not listed.dependencies
    assert not (await disc.ListAssets(discovery_pb2.ListAssetsRequest(), metadata=them)).assets
    # A flow on another tenant's import fails exactly as on an import nobody uploaded.
    for import_id in (uuid.UUID(uploaded.name.split("/")[1]), uuid.uuid4()):
        theirs = await create(servers, stranger, import_id=import_id)
        assert await settles(servers, stranger, theirs.name) == flow_pb2.FLOW_STATUS_FAILED
        failed = await get_flow(servers, stranger, theirs.name)
        errors = [p.error.reason for p in failed.phases if p.HasField("error")]
        assert errors == ["IMPORT_NOT_FOUND"]


# -- 8. The database down or restarting ------------------------------------------------------


def _unreachable_url() -> str:
    return f"postgresql://flowpair@127.0.0.1:{free_port()}/flowpair"


def _assert_unavailable(code: grpc.StatusCode, details: str) -> None:
    assert code == grpc.StatusCode.UNAVAILABLE, (code, details)
    assert "retry" in details
    for internal in ("Errno", "Connect call", "asyncpg", "sqlalchemy", "127.0.0.1"):
        assert internal not in details, details


async def test_an_unreachable_database_is_unavailable(database_url: str) -> None:
    stack = Stack(_unreachable_url())
    try:
        await stack.start_orchestrator()
        await stack.start_discovery()
        orch, disc, meta = stack.orchestrator(), stack.discovery(), md(new_tenant())
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: orch.CreateFlow(
                orchestrator_pb2.CreateFlowRequest(flow=discovery_flow()), metadata=meta
            ),
            lambda: orch.GetFlow(
                orchestrator_pb2.GetFlowRequest(name=f"flows/{uuid.uuid4()}"), metadata=meta
            ),
            lambda: orch.ListFlows(orchestrator_pb2.ListFlowsRequest(), metadata=meta),
            lambda: disc.GetImport(
                discovery_pb2.GetImportRequest(name=f"imports/{uuid.uuid4()}"), metadata=meta
            ),
            lambda: disc.ListAssets(discovery_pb2.ListAssetsRequest(), metadata=meta),
            lambda: stack.upload(new_tenant(), b"a,b\n1,2\n"),
        ]
        for call in calls:
            _assert_unavailable(*await code_of(call))
    finally:
        await stack.close()


class PgProxy:
    """A TCP proxy in front of the test server: stopping it is PostgreSQL going down (every
    connection cut, new ones refused), starting it again is PostgreSQL coming back."""

    def __init__(self, database_url: str) -> None:
        parts = urlsplit(database_url)
        query = parse_qs(parts.query)
        socket_dir = query.pop("host", [""])[0]
        if socket_dir.startswith("/"):
            self.target: tuple[str, ...] = ("unix", f"{socket_dir}/.s.PGSQL.{parts.port or 5432}")
        else:
            self.target = ("tcp", parts.hostname or "127.0.0.1", str(parts.port or 5432))
        self.port = free_port()
        user = parts.netloc.rpartition("@")[0]
        rest = f"?{urlencode(query, doseq=True)}" if query else ""
        self.url = f"{parts.scheme}://{user}@127.0.0.1:{self.port}{parts.path}{rest}"
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.target[0] == "unix":
            up_reader, up_writer = await asyncio.open_unix_connection(self.target[1])
        else:
            up_reader, up_writer = await asyncio.open_connection(
                self.target[1], int(self.target[2])
            )
        self._writers.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


async def test_a_service_started_while_the_database_is_down_checks_its_role_later(
    database_url: str,
) -> None:
    """It serves (UNAVAILABLE) meanwhile; once PostgreSQL answers, a role that bypasses
    row-level security (here the superuser owner) still stops it."""
    from orchestrator_svc.app import build

    proxy = PgProxy(database_url)
    stack = Stack(proxy.url)
    stopped = asyncio.Event()
    try:
        # The owner's URL (a superuser), not the flowpair_app one the Stack would use.
        app = build(replace(stack.settings(), database_url=proxy.url))
        app.on_fatal = stopped.set
        await app.start()
        stack.apps.append(app)
        _assert_unavailable(
            *await code_of(
                lambda: stack.orchestrator().ListFlows(
                    orchestrator_pb2.ListFlowsRequest(), metadata=md(new_tenant())
                )
            )
        )
        assert app.fatal is None and not app.ready
        health: Any = health_pb2_grpc.HealthStub(stack.channel(stack.orchestrator_port))
        answer = await health.Check(health_pb2.HealthCheckRequest())
        assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
        await proxy.start()
        await asyncio.wait_for(stopped.wait(), 20)
        assert app.fatal is not None and "bypasses row-level security" in app.fatal
    finally:
        await stack.close()
        await proxy.stop()


async def test_postgresql_going_away_is_unavailable_and_everything_recovers(
    database_url: str,
) -> None:
    proxy = PgProxy(database_url)
    await proxy.start()
    stack = Stack(proxy.url)
    try:
        await stack.start_orchestrator()
        await stack.start_discovery()
        tenant = new_tenant()
        uploaded = await stack.upload(tenant, SAMPLE)
        flow = orchestrator_pb2.Flow(
            type=flow_pb2.FLOW_TYPE_DISCOVERY, auto_approve=True, allow_concurrent=True
        )
        flow.data_import = uploaded.name
        created = await stack.orchestrator().CreateFlow(
            orchestrator_pb2.CreateFlowRequest(flow=flow), metadata=md(tenant)
        )
        name = created.flow.name
        await proxy.stop()  # while the flow's commands and phases are in flight
        for call in (
            lambda: get_flow(stack, tenant, name),
            lambda: stack.discovery().GetImport(
                discovery_pb2.GetImportRequest(name=uploaded.name), metadata=md(tenant)
            ),
            lambda: stack.orchestrator().ListFlows(
                orchestrator_pb2.ListFlowsRequest(), metadata=md(tenant)
            ),
        ):
            _assert_unavailable(*await code_of(call))
        await asyncio.sleep(2)
        await proxy.start()
        # The pool, the relays, the listener and the phase runner all come back by themselves.
        assert await settles(stack, tenant, name, timeout=90) == flow_pb2.FLOW_STATUS_COMPLETED
        parked = await fetchval(
            database_url, "SELECT count(*) FROM messaging.outbox WHERE parked_at IS NOT NULL"
        )
        assert parked == 0
    finally:
        await stack.close()
        if proxy._server is not None:
            await proxy.stop()


async def test_a_peer_whose_database_is_down_never_gets_a_message_parked(stack: Stack) -> None:
    from discovery_svc.app import build

    with_relay(stack, max_rejections=2)
    await stack.start_orchestrator()
    broken = build(replace(stack.settings(), database_url=_unreachable_url()))
    await broken.start()
    stack.apps.append(broken)
    tenant = new_tenant()
    name = (await create(stack, tenant)).name

    async def tried_a_lot() -> bool:
        attempts = await fetchval(stack.database_url, "SELECT max(attempts) FROM messaging.outbox")
        return bool(attempts and attempts > 4)

    await eventually(tried_a_lot)
    [row] = await fetch(
        stack.database_url, "SELECT rejections, parked_at, last_error FROM messaging.outbox"
    )
    assert row["rejections"] == 0 and row["parked_at"] is None, dict(row)
    assert row["last_error"].startswith("UNAVAILABLE"), row["last_error"]
    # Discovery back on its database: the waiting command is delivered.
    stack.apps.remove(broken)
    await broken.stop(0.5)
    await stack.start_discovery()

    async def has_child() -> bool:
        return bool((await get_flow(stack, tenant, name)).child_flow)

    await eventually(has_child)


class LosesItsDatabaseOnce:
    """The real DATA_IMPORT, whose first run loses its database connection."""

    phase: ClassVar[Phase] = Phase.DATA_IMPORT
    timeout: ClassVar[float] = 60.0

    def __init__(self) -> None:
        self.runs = 0

    async def run(self, child: ChildFlow, conn: AsyncConnection) -> PhaseOutcome:
        self.runs += 1
        if self.runs == 1:
            raise asyncpg.exceptions.AdminShutdownError("terminating connection")
        return await HANDLERS[self.phase].run(child, conn)


async def test_a_phase_interrupted_by_the_database_runs_again_instead_of_failing(
    stack: Stack,
) -> None:
    flaky = LosesItsDatabaseOnce()
    await stack.start_orchestrator()
    await stack.start_discovery({**HANDLERS, Phase.DATA_IMPORT: flaky})
    tenant = new_tenant()
    uploaded = await stack.upload(tenant, SAMPLE)
    flow = orchestrator_pb2.Flow(
        type=flow_pb2.FLOW_TYPE_DISCOVERY, auto_approve=True, allow_concurrent=True
    )
    flow.data_import = uploaded.name
    name = (
        await stack.orchestrator().CreateFlow(
            orchestrator_pb2.CreateFlowRequest(flow=flow), metadata=md(tenant)
        )
    ).flow.name
    assert await settles(stack, tenant, name) == flow_pb2.FLOW_STATUS_COMPLETED
    assert flaky.runs == 2
    events = await stack.orchestrator().ListFlowEvents(
        orchestrator_pb2.ListFlowEventsRequest(name=name, page_size=1000), metadata=md(tenant)
    )
    assert not [e for e in events.events if e.phase_status == flow_pb2.PHASE_STATUS_FAILED]


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN])
async def test_infrastructure_answers_never_park_a_message(
    engine: Any,  # noqa: F811
    relays: Relays,  # noqa: F811
    database_url: str,
    code: grpc.StatusCode,
) -> None:
    peer = Peer()
    calls = 0

    def decide(_key: str) -> grpc.StatusCode:
        nonlocal calls
        calls += 1
        return code if calls <= 3 * SETTINGS.max_rejections else grpc.StatusCode.OK

    peer.decide = decide
    await peer.start()
    try:
        relays.start(peer.port)
        await write(engine, "k", 1)

        async def delivered() -> bool:
            return peer.values("k") == [1]

        await eventually(delivered)
        row = (
            await fetch(
                database_url, "SELECT attempts, rejections, parked_at FROM messaging.outbox"
            )
        )[0]
        assert row["attempts"] > SETTINGS.max_rejections
        assert row["rejections"] == 0 and row["parked_at"] is None
    finally:
        await peer.stop()


def test_the_database_failure_map() -> None:
    import sqlalchemy.exc

    from flowpair_shared.grpc_errors import infrastructure_status

    def status(error: BaseException) -> grpc.StatusCode | None:
        s = infrastructure_status(error)
        return s.code if s is not None else None

    unavailable = [
        ConnectionRefusedError(111, "Connect call failed"),
        ConnectionResetError(),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.CrashShutdownError("crash"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.InterfaceError("connection is closed"),
        sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
        sqlalchemy.exc.DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True),
        sqlalchemy.exc.OperationalError(
            "SELECT 1", {}, asyncpg.exceptions.AdminShutdownError("bye")
        ),
    ]
    for error in unavailable:
        assert status(error) == grpc.StatusCode.UNAVAILABLE, repr(error)
    for error in (
        asyncpg.exceptions.SerializationError("could not serialize"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock"),
        sqlalchemy.exc.DBAPIError("x", {}, asyncpg.exceptions.SerializationError("s")),
    ):
        assert status(error) == grpc.StatusCode.ABORTED, repr(error)
    for error in (
        ValueError("bug"),
        asyncpg.exceptions.UniqueViolationError("dup"),
        asyncpg.exceptions.InterfaceError("cannot perform operation: another is in progress"),
        sqlalchemy.exc.DBAPIError("x", {}, Exception("syntax"), connection_invalidated=False),
    ):
        assert status(error) is None, repr(error)


# -- 9. Long values in key columns -----------------------------------------------------------


def _noise(rng: random.Random, n: int) -> str:
    """Text that does not compress (a compressible value would squeeze into an index)."""
    return "".join(rng.choices(string.ascii_lowercase + string.digits, k=n))


async def test_cells_longer_than_an_index_entry_complete_the_inventory(servers: Stack) -> None:
    rng = random.Random(9)
    tenant = new_tenant()
    header = (
        "hostname,serial_number,asset_name,ip_address,operating_system,cpu_cores,memory_gb,"
        "asset_type,application_name\n"
    )
    long3, long10 = f"name-{_noise(rng, 3000)}", f"name-{_noise(rng, 10_000)}"
    serial3, serial10 = f"SN{_noise(rng, 3000)}", f"SN{_noise(rng, 10_000)}"
    app3 = f"app {_noise(rng, 3000)}"
    rows = [
        f"srv-a,{serial3},{long3},10.0.0.1,RHEL 8,4,16,server,{app3}",
        f"srv-b,{serial10},{long10},10.0.0.2,RHEL 8,4,16,server,",
        f"{'h' * 3000},,name-{_noise(rng, 3000)},10.0.0.3,RHEL 8,4,16,server,",
        f",{_noise(rng, 10_000)},,10.0.0.4,RHEL 8,4,16,server,",
        "srv-e,SN-E,plain,10.0.0.5,RHEL 8,4,16,server,payroll",
    ]
    uploaded = await servers.upload(tenant, (header + "\n".join(rows) + "\n").encode())
    flow = orchestrator_pb2.Flow(
        type=flow_pb2.FLOW_TYPE_DISCOVERY, auto_approve=True, allow_concurrent=True
    )
    flow.data_import = uploaded.name
    name = (
        await servers.orchestrator().CreateFlow(
            orchestrator_pb2.CreateFlowRequest(flow=flow), metadata=md(tenant)
        )
    ).flow.name
    status = await settles(servers, tenant, name)
    done = await get_flow(servers, tenant, name)
    assert status == flow_pb2.FLOW_STATUS_COMPLETED, [
        (p.phase, p.error.reason, p.error.message) for p in done.phases if p.HasField("error")
    ]
    # Every asset, paged two by two (tokens carry a bounded prefix of long names).
    disc, assets, token = servers.discovery(), [], ""
    while True:
        page = await disc.ListAssets(
            discovery_pb2.ListAssetsRequest(page_size=2, page_token=token), metadata=md(tenant)
        )
        assets += list(page.assets)
        token = page.next_page_token
        if not token:
            break
    by_name = {a.display_name: a for a in assets}
    assert len(by_name) == len(assets) == page.total_size
    assert long3 in by_name and long10 in by_name and app3 in by_name
    assert by_name[long10].serial_number == serial10
    got = await disc.GetAsset(
        discovery_pb2.GetAssetRequest(name=by_name[long3].name), metadata=md(tenant)
    )
    assert got.asset.display_name == long3
    issues = await fetch(
        servers.database_url,
        "SELECT row_number, attribute, problem FROM discovery.cleansing_issues"
        " ORDER BY row_number, attribute",
    )
    found = {(r["row_number"], r["attribute"]) for r in issues}
    assert (3, "hostname") in found  # no host name is 3000 characters long
    for row_number, attribute in ((1, "serial_number"), (1, "asset_name"), (2, "asset_name")):
        assert (row_number, attribute) in found, issues
    assert (1, "application_name") in found
    assert not any(r["row_number"] == 5 for r in issues)


async def test_pages_of_huge_values_still_fit_a_clients_message_limit(servers: Stack) -> None:
    """Cells can be a megabyte: a page of such assets would pass 4 MiB, the default limit of
    a client's incoming message, and be refused whole (RESOURCE_EXHAUSTED)."""
    rng = random.Random(3)
    tenant = new_tenant()
    header = "hostname,asset_name,ip_address,operating_system,cpu_cores,memory_gb,asset_type\n"
    names = [f"{i}-{_noise(rng, 700_000)}" for i in range(8)]
    rows = [f"srv-{i},{n},10.0.1.{i},RHEL 8,4,16,server\n" for i, n in enumerate(names)]
    uploaded = await servers.upload(tenant, (header + "".join(rows)).encode())
    flow = orchestrator_pb2.Flow(
        type=flow_pb2.FLOW_TYPE_DISCOVERY, auto_approve=True, allow_concurrent=True
    )
    flow.data_import = uploaded.name
    name = (
        await servers.orchestrator().CreateFlow(
            orchestrator_pb2.CreateFlowRequest(flow=flow), metadata=md(tenant)
        )
    ).flow.name
    assert await settles(servers, tenant, name) == flow_pb2.FLOW_STATUS_COMPLETED
    disc, seen, token, pages = servers.discovery(), [], "", 0
    while True:
        page = await disc.ListAssets(
            discovery_pb2.ListAssetsRequest(page_size=1000, page_token=token), metadata=md(tenant)
        )
        pages += 1
        seen += [a.display_name for a in page.assets]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(names) and pages > 1
    profile = await disc.GetDataProfile(
        discovery_pb2.GetDataProfileRequest(master_flow=name), metadata=md(tenant)
    )
    column = next(c for c in profile.profile.columns if c.name == "asset_name")
    assert column.sample_values and all(len(v) <= 200 for v in column.sample_values)


# -- Other routes from bad input to INTERNAL -------------------------------------------------


async def test_other_odd_values_are_invalid_argument_or_fine(servers: Stack) -> None:
    orch, disc, tenant = servers.orchestrator(), servers.discovery(), new_tenant()
    meta = md(tenant)
    flow = await create(servers, tenant)
    # Huge page sizes are coerced; negative ones refused.
    await orch.ListFlows(orchestrator_pb2.ListFlowsRequest(page_size=2**31 - 1), metadata=meta)
    await disc.ListAssets(discovery_pb2.ListAssetsRequest(page_size=2**31 - 1), metadata=meta)
    v = await invalid(
        lambda: disc.ListDependencies(
            discovery_pb2.ListDependenciesRequest(page_size=-(2**31)), metadata=meta
        )
    )
    assert set(v) == {"page_size"}
    # Unknown enum numbers (proto3 enums are open).
    v = await invalid(
        lambda: orch.RetryPhase(
            orchestrator_pb2.RetryPhaseRequest(name=flow.name, phase=flow_pb2.Phase.ValueType(999)),
            metadata=meta,
        )
    )
    assert "phase" in v
    v = await invalid(
        lambda: orch.CreateFlow(
            orchestrator_pb2.CreateFlowRequest(
                flow=orchestrator_pb2.Flow(
                    type=flow_pb2.FlowType.ValueType(-5), mapping_confidence_threshold=math.nan
                )
            ),
            metadata=meta,
        )
    )
    assert {"flow.type", "flow.mapping_confidence_threshold"} <= set(v)
    v = await invalid(
        lambda: orch.WatchFlow(
            orchestrator_pb2.WatchFlowRequest(name=flow.name, after_sequence=-1), metadata=meta
        ).read()
    )
    assert "after_sequence" in v
    # Names with odd spellings of a UUID, or no UUID at all.
    flow_id = flow.name.split("/")[1]
    for bad in (
        f"flows/{{{flow_id}}}",
        f"flows/urn:uuid:{flow_id}",
        f"flows/{flow_id.replace('-', '')}",
        f"flows/{flow_id}/events",
        f"flows/{uuid.UUID(int=0)}",
        "flows/" + "9" * 100_000,
    ):
        v = await invalid(
            lambda: orch.GetFlow(orchestrator_pb2.GetFlowRequest(name=bad), metadata=meta)  # noqa: B023
        )
        assert set(v) == {"name"}, bad
    assert (await get_flow(servers, tenant, f"flows/{flow_id.upper()}")).name == flow.name
    for bad_id in ("{" + str(uuid.uuid4()) + "}", str(uuid.UUID(int=0))):
        request = orchestrator_pb2.CreateFlowRequest(flow=discovery_flow(), request_id=bad_id)
        v = await invalid(lambda: orch.CreateFlow(request, metadata=meta))  # noqa: B023
        assert set(v) == {"request_id"}
    code, _ = await code_of(lambda: servers.upload(tenant, b"a\n1\n", import_id=uuid.UUID(int=0)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    # Very long strings and oversized repeated fields.
    v = await invalid(
        lambda: orch.ListFlows(orchestrator_pb2.ListFlowsRequest(filter="x" * 5000), metadata=meta)
    )
    assert set(v) == {"filter"}
    too_many = discovery_pb2.UpdateFieldMappingsRequest(
        master_flow=flow.name,
        etag='W/"1"',
        updates=[discovery_pb2.FieldMappingUpdate(source_column="c", reject=True)] * 2001,
    )
    v = await invalid(lambda: disc.UpdateFieldMappings(too_many, metadata=meta))
    assert set(v) == {"updates"}
    long_etag = discovery_pb2.UpdateFieldMappingsRequest(master_flow=flow.name, etag="e" * 65)
    v = await invalid(lambda: disc.UpdateFieldMappings(long_etag, metadata=meta))
    assert set(v) == {"etag"}
    # Many bad terms: every violation counted, the status still fits a client's trailers.
    terms = " OR ".join(f"status = X{i}" for i in range(80))[:1000]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await orch.ListFlows(orchestrator_pb2.ListFlowsRequest(filter=terms), metadata=meta)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "more" in (err.value.details() or "")


@pytest.mark.parametrize("char", ["x", "\U0001f600"])
def test_statuses_are_bounded_whatever_the_input(char: str) -> None:
    from flowpair_shared.errors import FailedPrecondition, FieldViolation, InvalidArgument
    from flowpair_shared.grpc_errors import MAX_MESSAGE, to_status

    for error in (
        InvalidArgument([FieldViolation(char * 1000, char * 100_000) for _ in range(500)]),
        FailedPrecondition(char * 100_000, subject=char * 100_000),
    ):
        status = to_status(error)
        assert len(status.details.encode()) <= MAX_MESSAGE
        trailers = dict(status.trailing_metadata)
        assert len(trailers["grpc-status-details-bin"]) < 5 * 1024
