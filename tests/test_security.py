"""The security boundary: who may call what, on which port, over which transport.

- Public ports serve and list only public services; internal methods are not there.
- Internal ports admit only the peer service's certificate (mutual TLS, same CA, right name).
- Every public RPC: no/bad/expired token → UNAUTHENTICATED; an account the token lacks, a
  role too low, an ``x-user-id`` that is not the token's → PERMISSION_DENIED; another
  tenant's resource → NOT_FOUND. One row per RPC in ``ROLES``, checked against the protos.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.message import Message
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from discovery_svc.app import INTERNAL_SERVICES as DISCOVERY_INTERNAL
from discovery_svc.app import PUBLIC_SERVICES as DISCOVERY_PUBLIC
from flowpair.internal.v1 import child_flow_service_pb2 as child_pb2
from flowpair.internal.v1 import child_flow_service_pb2_grpc
from flowpair.internal.v1 import flow_event_service_pb2 as events_pb2
from flowpair.v1 import discovery_pb2, flow_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from flowpair_shared.auth import Role, method_roles
from flowpair_shared.settings import Settings
from flowpair_shared.tenancy import Tenant
from orchestrator_svc.app import INTERNAL_SERVICES as ORCHESTRATOR_INTERNAL
from orchestrator_svc.app import PUBLIC_SERVICES as ORCHESTRATOR_PUBLIC
from tests import credentials as creds
from tests.support import ROOT, Stack, eventually, md, new_tenant, peer_md

EXAMPLE = ROOT / "examples" / "inventory.csv"
ORCH = "/flowpair.v1.OrchestratorService/"
DISC = "/flowpair.v1.DiscoveryService/"

# The authorization table: every public RPC, the least role it needs, and the kind of
# resource its request names (NOT_FOUND for another tenant's). A new RPC fails
# test_every_public_rpc_has_a_row until it gets a row here.
ROLES: dict[str, tuple[Role, str | None]] = {
    ORCH + "CreateFlow": (Role.OPERATOR, None),
    ORCH + "GetFlow": (Role.VIEWER, "flow"),
    ORCH + "ListFlows": (Role.VIEWER, None),
    ORCH + "PauseFlow": (Role.OPERATOR, "flow"),
    ORCH + "ResumeFlow": (Role.OPERATOR, "flow"),
    ORCH + "CancelFlow": (Role.OPERATOR, "flow"),
    ORCH + "RetryPhase": (Role.OPERATOR, "flow"),
    ORCH + "ListFlowEvents": (Role.VIEWER, "flow"),
    ORCH + "WatchFlow": (Role.VIEWER, "flow"),
    ORCH + "DiagnoseFlow": (Role.OPERATOR, "flow"),
    ORCH + "ListParkedMessages": (Role.ADMIN, None),
    ORCH + "RequeueMessages": (Role.ADMIN, None),
    DISC + "GetChildFlow": (Role.VIEWER, "flow"),
    DISC + "UploadImportData": (Role.OPERATOR, None),
    DISC + "GetImport": (Role.VIEWER, "import"),
    DISC + "GetDataProfile": (Role.VIEWER, "flow"),
    DISC + "ListFieldMappings": (Role.VIEWER, "flow"),
    DISC + "UpdateFieldMappings": (Role.OPERATOR, "flow"),
    DISC + "ListAssets": (Role.VIEWER, None),
    DISC + "GetAsset": (Role.VIEWER, "asset"),
    DISC + "ListDependencies": (Role.VIEWER, None),
    DISC + "ListDataIssues": (Role.VIEWER, "flow"),
}
DENIED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


def test_every_public_rpc_has_a_row_and_the_protos_agree() -> None:
    declared = method_roles([*ORCHESTRATOR_PUBLIC, *DISCOVERY_PUBLIC])
    assert {m: r for m, (r, _) in ROLES.items()} == declared
    internal = method_roles([*ORCHESTRATOR_INTERNAL, *DISCOVERY_INTERNAL])
    assert internal and not set(internal) & set(declared)
    # Internal methods carry no role: a public server would refuse them even if registered.
    assert all(role is None for role in internal.values())


@dataclasses.dataclass
class World:
    stack: Stack
    owner: Tenant
    flow: str
    import_name: str

    def request(self, method: str) -> Message | list[Message]:
        name = method.rsplit("/", 1)[1]
        flow, imp = self.flow, self.import_name
        with_import = orchestrator_pb2.Flow(type=flow_pb2.FLOW_TYPE_DISCOVERY)
        with_import.data_import = imp
        by_name: dict[str, Message | list[Message]] = {
            "CreateFlow": orchestrator_pb2.CreateFlowRequest(flow=with_import),
            "GetFlow": orchestrator_pb2.GetFlowRequest(name=flow),
            "ListFlows": orchestrator_pb2.ListFlowsRequest(),
            "PauseFlow": orchestrator_pb2.PauseFlowRequest(name=flow),
            "ResumeFlow": orchestrator_pb2.ResumeFlowRequest(name=flow),
            "CancelFlow": orchestrator_pb2.CancelFlowRequest(name=flow),
            "RetryPhase": orchestrator_pb2.RetryPhaseRequest(
                name=flow, phase=flow_pb2.PHASE_DATA_IMPORT
            ),
            "ListFlowEvents": orchestrator_pb2.ListFlowEventsRequest(name=flow),
            "WatchFlow": orchestrator_pb2.WatchFlowRequest(name=flow),
            "DiagnoseFlow": orchestrator_pb2.DiagnoseFlowRequest(name=flow),
            "ListParkedMessages": orchestrator_pb2.ListParkedMessagesRequest(flow=flow),
            "RequeueMessages": orchestrator_pb2.RequeueMessagesRequest(all=True),
            "GetChildFlow": discovery_pb2.GetChildFlowRequest(master_flow=flow),
            "UploadImportData": [
                discovery_pb2.UploadImportDataRequest(
                    metadata=discovery_pb2.ImportMetadata(file_name="a.csv")
                ),
                discovery_pb2.UploadImportDataRequest(chunk=b"hostname,ip\nh1,10.0.0.1\n"),
            ],
            "GetImport": discovery_pb2.GetImportRequest(name=imp),
            "GetDataProfile": discovery_pb2.GetDataProfileRequest(master_flow=flow),
            "ListFieldMappings": discovery_pb2.ListFieldMappingsRequest(master_flow=flow),
            "UpdateFieldMappings": discovery_pb2.UpdateFieldMappingsRequest(
                master_flow=flow, etag='W/"1"', approve=True
            ),
            "ListAssets": discovery_pb2.ListAssetsRequest(),
            "GetAsset": discovery_pb2.GetAssetRequest(name=f"assets/{uuid.uuid4()}"),
            "ListDependencies": discovery_pb2.ListDependenciesRequest(),
            "ListDataIssues": discovery_pb2.ListDataIssuesRequest(master_flow=flow),
        }
        return by_name[name]

    async def call(
        self, method: str, metadata: tuple[tuple[str, str], ...]
    ) -> tuple[grpc.StatusCode, Any]:
        """Call ``method`` with ``metadata``; the status code and the (first) response."""
        port = (
            self.stack.orchestrator_port if method.startswith(ORCH) else self.stack.discovery_port
        )
        channel = self.stack.channel(port)
        request = self.request(method)
        ser, de = (lambda m: m.SerializeToString()), (lambda b: b)
        try:
            if isinstance(request, list):
                messages = request

                async def stream() -> AsyncIterator[Message]:
                    for m in messages:
                        yield m

                call = channel.stream_unary(
                    method, request_serializer=ser, response_deserializer=de
                )
                return grpc.StatusCode.OK, await call(stream(), metadata=metadata, timeout=10)
            if method.endswith("/WatchFlow"):
                watch = channel.unary_stream(
                    method, request_serializer=ser, response_deserializer=de
                )
                async for first in watch(request, metadata=metadata, timeout=5):
                    return grpc.StatusCode.OK, first
                return grpc.StatusCode.OK, None
            unary = channel.unary_unary(method, request_serializer=ser, response_deserializer=de)
            return grpc.StatusCode.OK, await unary(request, metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as error:
            return error.code(), error.details()


@pytest.fixture
async def world(stack: Stack) -> World:
    await stack.start_orchestrator()
    await stack.start_discovery()
    owner = new_tenant()
    name, uploaded = await stack.start_flow(owner, EXAMPLE.read_bytes())
    return World(stack, owner, name, uploaded.name)


def _with(
    metadata: tuple[tuple[str, str], ...], **changes: str | None
) -> tuple[tuple[str, str], ...]:
    out = [(k, v) for k, v in metadata if k.replace("-", "_") not in changes]
    out += [(k.replace("_", "-"), v) for k, v in changes.items() if v is not None]
    return tuple(out)


def _jwt(tenant: Tenant, role: Role, **claims: Any) -> str:
    body = {**creds.claims_for(tenant, role), **claims}
    return creds.sign({k: v for k, v in body.items() if v is not None})


async def test_authorization_matrix(world: World) -> None:
    owner = world.owner
    headers = tuple(owner.metadata().items())
    other_key = ec.generate_private_key(ec.SECP256R1())
    bad_credentials: dict[str, tuple[tuple[str, str], ...]] = {
        "no token": headers,
        "not bearer": (*headers, ("authorization", "Basic dXNlcjpwYXNz")),
        "empty bearer": (*headers, ("authorization", "Bearer ")),
        "unknown opaque token": (*headers, ("authorization", "Bearer fp_nope")),
        "garbage jwt": (*headers, ("authorization", "Bearer a.b.c")),
        "expired jwt": (
            *headers,
            ("authorization", f"Bearer {_jwt(owner, Role.ADMIN, exp=int(time.time()) - 3600)}"),
        ),
        "wrong audience": (
            *headers,
            ("authorization", f"Bearer {_jwt(owner, Role.ADMIN, aud='someone-else')}"),
        ),
        "wrong issuer": (
            *headers,
            ("authorization", f"Bearer {_jwt(owner, Role.ADMIN, iss='https://evil.test')}"),
        ),
        "no expiry": (*headers, ("authorization", f"Bearer {_jwt(owner, Role.ADMIN, exp=None)}")),
        "foreign signing key": (
            *headers,
            (
                "authorization",
                "Bearer " + creds.sign(creds.claims_for(owner, Role.ADMIN), key=other_key),
            ),
        ),
        "two tokens": (*md(owner), ("authorization", f"Bearer {creds.bearer(owner)}")),
    }
    stranger = new_tenant()
    intruder = Tenant(stranger.client_account_id, owner.engagement_id, stranger.user_id)
    forbidden: dict[str, tuple[tuple[str, str], ...]] = {
        # A valid token for another client account, sent with the owner's tenant headers.
        "account not granted": _with(
            md(owner), authorization=f"Bearer {creds.bearer(intruder, Role.ADMIN)}"
        ),
        "x-user-id not the principal": _with(md(owner, Role.ADMIN), x_user_id=str(uuid.uuid4())),
    }
    for method, (required, resource) in ROLES.items():
        for case, metadata in bad_credentials.items():
            code, _ = await world.call(method, metadata)
            assert code == grpc.StatusCode.UNAUTHENTICATED, (method, case, code)
        for case, metadata in forbidden.items():
            code, _ = await world.call(method, metadata)
            assert code == grpc.StatusCode.PERMISSION_DENIED, (method, case, code)
        for role in Role:
            code, detail = await world.call(method, md(owner, role))
            if role < required:
                assert code == grpc.StatusCode.PERMISSION_DENIED, (method, role, code)
                assert required.name.lower() in str(detail)
            else:
                assert code not in DENIED, (method, role, code, detail)
        if resource is not None:
            # Another tenant, fully entitled in its own account, asking for the owner's resource.
            code, _ = await world.call(method, md(stranger, Role.ADMIN))
            assert code == grpc.StatusCode.NOT_FOUND, (method, code)


async def test_opaque_tokens_from_the_tokens_file(world: World) -> None:
    viewer_token, viewer = creds.opaque_token(Role.VIEWER)
    operator_token, operator = creds.opaque_token(Role.OPERATOR)

    def meta(tenant: Tenant, token: str) -> tuple[tuple[str, str], ...]:
        return (*tenant.metadata().items(), ("authorization", f"Bearer {token}"))

    code, _ = await world.call(ORCH + "ListFlows", meta(viewer, viewer_token))
    assert code == grpc.StatusCode.OK
    code, _ = await world.call(ORCH + "CreateFlow", meta(viewer, viewer_token))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code, _ = await world.call(DISC + "UploadImportData", meta(operator, operator_token))
    assert code == grpc.StatusCode.OK
    # The token acts for its own account only.
    code, _ = await world.call(ORCH + "ListFlows", meta(world.owner, operator_token))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    # x-user-id may be omitted: the principal is the user.
    without_user = _with(meta(operator, operator_token), x_user_id=None)
    code, _ = await world.call(ORCH + "ListFlows", without_user)
    assert code == grpc.StatusCode.OK


async def test_the_creator_is_the_tokens_principal(world: World) -> None:
    got = await world.stack.orchestrator().GetFlow(
        orchestrator_pb2.GetFlowRequest(name=world.flow), metadata=md(world.owner)
    )
    assert got.flow.create_user == str(world.owner.user_id)


async def _reflected(channel: grpc.aio.Channel) -> tuple[set[str], Any]:
    stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[arg-type]
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="flowpair.internal.v1.FlowEventService"
        ),
    ]
    names: set[str] = set()
    answers = [r async for r in stub.ServerReflectionInfo(iter(requests))]
    names |= {s.name for s in answers[0].list_services_response.service}
    return names, answers[1]


async def test_public_ports_serve_and_list_no_internal_method(world: World) -> None:
    stack = world.stack
    for port, public in (
        (stack.orchestrator_port, "flowpair.v1.OrchestratorService"),
        (stack.discovery_port, "flowpair.v1.DiscoveryService"),
    ):
        names, symbol = await _reflected(stack.channel(port))
        assert names == {
            public,
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        }
        assert symbol.HasField("error_response")  # the internal service is not described
    # Called anyway, with a perfectly good admin token: the public port has no such method.
    for port, method, request in (
        (
            stack.orchestrator_port,
            "/flowpair.internal.v1.FlowEventService/RecordPhaseStatus",
            events_pb2.RecordPhaseStatusRequest(),
        ),
        (
            stack.discovery_port,
            "/flowpair.internal.v1.ChildFlowService/CreateChildFlow",
            child_pb2.CreateChildFlowRequest(master_flow=world.flow),
        ),
    ):
        call: Any = stack.channel(port).unary_unary(
            method, request_serializer=lambda m: m.SerializeToString(), response_deserializer=bytes
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(request, metadata=md(world.owner, Role.ADMIN), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_internal_ports_admit_only_the_peer_certificate(world: World) -> None:
    stack, tenant = world.stack, world.owner
    request = child_pb2.RunPhaseRequest(master_flow=world.flow, phase=flow_pb2.PHASE_DATA_CLEANSING)
    target = f"127.0.0.1:{stack.discovery_internal_port}"
    ca = (creds.credentials().dir / "certs" / "ca.pem").read_bytes()
    override = (("grpc.ssl_target_name_override", "discovery"),)
    refused_at_handshake = {
        "plaintext": grpc.aio.insecure_channel(target),
        "TLS without a client certificate": grpc.aio.secure_channel(
            target, grpc.ssl_channel_credentials(root_certificates=ca), options=override
        ),
        "a certificate of another CA": creds.internal_channel(
            stack.discovery_internal_port,
            "discovery",
            "orchestrator",
            certs=creds.credentials().rogue_dir,
        ),
    }
    for case, channel in refused_at_handshake.items():
        stub = child_flow_service_pb2_grpc.ChildFlowServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.RunPhase(request, metadata=peer_md(tenant), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, case
        await channel.close()
    # The right CA but the wrong service: discovery's own certificate calling discovery.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.child_flows(as_peer="discovery").RunPhase(
            request, metadata=peer_md(tenant), timeout=5
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.flow_events(as_peer="orchestrator").RecordPhaseStatus(
            events_pb2.RecordPhaseStatusRequest(), metadata=peer_md(tenant), timeout=5
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # The peer itself gets through (to validation: the event is empty).
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.flow_events().RecordPhaseStatus(
            events_pb2.RecordPhaseStatusRequest(), metadata=peer_md(tenant), timeout=5
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Nothing above changed the flow: it is still where the relay left it.
    flow = await stack.orchestrator().GetFlow(
        orchestrator_pb2.GetFlowRequest(name=world.flow), metadata=md(tenant)
    )
    assert flow.flow.phases[4].status != flow_pb2.PHASE_STATUS_RUNNING


@pytest.mark.parametrize(
    ("changes", "refusal"),
    [
        ({"orchestrator_listen": "0.0.0.0:0"}, "is not loopback and has no TLS"),
        ({"auth_tokens_file": "", "auth_jwks": ""}, "no authentication is configured"),
        ({"internal_ca_file": ""}, "has no mutual TLS"),
    ],
)
def test_refuses_to_start_exposed_unless_insecure_is_allowed(
    changes: dict[str, str], refusal: str
) -> None:
    from orchestrator_svc.app import build

    settings = dataclasses.replace(Stack("postgresql://127.0.0.1:1/x").settings(), **changes)  # type: ignore[arg-type]
    if "internal_ca_file" in changes:
        settings = dataclasses.replace(
            settings, orchestrator_internal_cert_file="", orchestrator_internal_key_file=""
        )
    with pytest.raises(SystemExit, match=refusal):
        build(settings)
    app = build(dataclasses.replace(settings, allow_insecure=True))
    assert app.public.listen == settings.orchestrator_listen


def test_settings_read_every_security_variable(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": "postgresql://x/y",
        **creds.credentials().env,
        "FLOWPAIR_ORCHESTRATOR_INTERNAL_LISTEN": "127.0.0.1:7001",
        "FLOWPAIR_DISCOVERY_INTERNAL_TARGET": "dns:///discovery:7002",
        "FLOWPAIR_ORCHESTRATOR_TLS_CERT_FILE": "/c.pem",
        "FLOWPAIR_ORCHESTRATOR_TLS_KEY_FILE": "/k.pem",
        "FLOWPAIR_ALLOW_INSECURE": "1",
    }
    s = Settings.from_env(env).service("orchestrator")
    assert (s.internal_listen, s.peer_internal_target) == (
        "127.0.0.1:7001",
        "dns:///discovery:7002",
    )
    assert (s.tls_cert_file, s.tls_key_file) == ("/c.pem", "/k.pem")
    assert s.internal_ca_file == env["FLOWPAIR_INTERNAL_CA_FILE"]
    assert Settings.from_env(env).allow_insecure
    with pytest.raises(SystemExit, match="FLOWPAIR_ALLOW_INSECURE"):
        Settings.from_env({**env, "FLOWPAIR_ALLOW_INSECURE": "maybe"})


async def test_public_tls(database_url: str) -> None:
    from flowpair_shared import devcerts

    folder = creds.credentials().dir / "certs"
    public = devcerts.ensure_public(folder, ["localhost"])
    stack = Stack(database_url)
    base = stack.settings()
    stack_settings = dataclasses.replace(
        base,
        orchestrator_listen=f"0.0.0.0:{stack.orchestrator_port}",
        orchestrator_tls_cert_file=public["FLOWPAIR_ORCHESTRATOR_TLS_CERT_FILE"],
        orchestrator_tls_key_file=public["FLOWPAIR_ORCHESTRATOR_TLS_KEY_FILE"],
    )
    from orchestrator_svc.app import build

    app = build(stack_settings)
    await app.start()
    try:
        tenant = new_tenant()
        credentials = grpc.ssl_channel_credentials((folder / "public" / "ca.pem").read_bytes())
        request = orchestrator_pb2.ListFlowsRequest()
        async with grpc.aio.secure_channel(f"localhost:{app.port}", credentials) as secure:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(secure)
            assert not (await stub.ListFlows(request, metadata=md(tenant), timeout=5)).flows
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as plain:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(plain)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ListFlows(request, metadata=md(tenant), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await app.stop(0.5)


async def _until_linked(stack: Stack, tenant: Tenant, name: str) -> None:
    async def linked() -> bool:
        got = await stack.orchestrator().GetFlow(
            orchestrator_pb2.GetFlowRequest(name=name), metadata=md(tenant)
        )
        return bool(got.flow.child_flow)

    await eventually(linked)


async def test_jwks_from_a_url_and_tokens_file_reload(tmp_path: Path) -> None:
    import http.server
    import threading

    from flowpair_shared.auth.jwt_verifier import JwtVerifier
    from flowpair_shared.auth.token_file import TokenFile, new_token, token_entry
    from flowpair_shared.errors import Unauthenticated

    folder = str(creds.credentials().dir)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=folder, **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        verifier = JwtVerifier(
            f"http://127.0.0.1:{server.server_address[1]}/jwks.json",
            issuer=creds.ISSUER,
            audience=creds.AUDIENCE,
        )
        tenant = new_tenant()
        principal = await verifier.principal(creds.bearer(tenant, Role.VIEWER))
        assert (principal.user_id, principal.role) == (tenant.user_id, Role.VIEWER)
        assert principal.may_act_for(tenant) and not principal.may_act_for(new_tenant())
        with pytest.raises(Unauthenticated):
            await verifier.principal(
                creds.sign(
                    creds.claims_for(tenant, Role.VIEWER),
                    key=ec.generate_private_key(ec.SECP256R1()),
                )
            )
    finally:
        server.shutdown()

    path = tmp_path / "tokens.json"
    first, second = new_token(), new_token()
    user = uuid.uuid4()

    def write(*tokens: str) -> None:
        entries = [
            token_entry(t, user_id=user, role=Role.OPERATOR, client_accounts=["*"]) for t in tokens
        ]
        path.write_text(json.dumps({"tokens": entries}))

    write(first)
    tokens = TokenFile(path)
    assert tokens.principal(first) is not None and tokens.principal(second) is None
    assert first not in path.read_text()  # only the hash is stored
    write(second)  # rotate: the first is revoked, the second added, no restart
    await asyncio.sleep(1.1)
    assert tokens.principal(first) is None and tokens.principal(second) is not None
    path.write_text("{not json")  # a broken edit keeps the last good file
    await asyncio.sleep(1.1)
    assert tokens.principal(second) is not None
    with pytest.raises(SystemExit, match="not JSON"):
        TokenFile(path)


async def test_a_public_certificate_never_passes_for_the_peers_internal_port(
    database_url: str,
) -> None:
    """The relay checks the server it reaches: a server holding discovery's *public*
    certificate (another CA) cannot stand in for discovery's internal port."""
    from flowpair_shared import devcerts, tls

    folder = creds.credentials().dir / "certs"
    public = devcerts.ensure_public(folder, ["localhost", "discovery"])
    impostor = grpc.aio.server()
    key = await asyncio.to_thread(Path(public["FLOWPAIR_DISCOVERY_TLS_KEY_FILE"]).read_bytes)
    cert = await asyncio.to_thread(Path(public["FLOWPAIR_DISCOVERY_TLS_CERT_FILE"]).read_bytes)
    port = impostor.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    await impostor.start()
    try:
        settings = dataclasses.replace(
            Stack(database_url).settings(), discovery_internal_target=f"127.0.0.1:{port}"
        )
        channel = tls.peer_channel(settings.service("orchestrator"), secure=True)
        stub = child_flow_service_pb2_grpc.ChildFlowServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.RunPhase(
                child_pb2.RunPhaseRequest(), metadata=peer_md(new_tenant()), timeout=5
            )
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        await channel.close()
    finally:
        await impostor.stop(None)


async def test_public_health_knows_only_public_services(world: World) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub: Any = health_pb2_grpc.HealthStub(world.stack.channel(world.stack.discovery_port))
    ok = await stub.Check(health_pb2.HealthCheckRequest(service="flowpair.v1.DiscoveryService"))
    assert ok.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Check(
            health_pb2.HealthCheckRequest(service="flowpair.internal.v1.ChildFlowService")
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_key_rotation_user_ids_and_insecure_jwks(tmp_path: Path) -> None:
    from flowpair_shared.auth.jwt_verifier import JwtVerifier
    from flowpair_shared.auth.token_file import TokenFile, new_token, parse, token_entry
    from flowpair_shared.errors import Unauthenticated

    jwks = tmp_path / "jwks.json"
    jwks.write_text((creds.credentials().dir / "jwks.json").read_text())
    verifier = JwtVerifier(str(jwks), issuer=creds.ISSUER, audience=creds.AUDIENCE)
    tenant = new_tenant()
    token = creds.bearer(tenant, Role.ADMIN)
    assert (await verifier.principal(token)).role == Role.ADMIN
    # The key is removed from the JWKS: its tokens stop at once, even ones seen before.
    other = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(other.public_key()))
    jwks.write_text(json.dumps({"keys": [{**public, "kid": "rotated", "alg": "ES256"}]}))
    with pytest.raises(Unauthenticated, match="key id"):
        await verifier.principal(token)

    # A subject that is a UUID flowpair does not accept as a user id (a non-RFC-4122 GUID)
    # becomes a stable UUIDv5, as any other subject: it can call, never break every call.
    fresh = JwtVerifier(
        str(creds.credentials().dir / "jwks.json"), issuer=creds.ISSUER, audience=creds.AUDIENCE
    )
    guid = "6F9619FF-8B86-D011-B42D-00C04FC964FF"
    claims = {**creds.claims_for(tenant, Role.VIEWER), "sub": guid}
    first = await fresh.principal(creds.sign(claims))
    again = await fresh.principal(creds.sign({**claims, "iat": claims["iat"] + 1}))
    assert first.user_id == again.user_id and first.user_id.version == 5
    entry = token_entry(
        new_token(), user_id=uuid.UUID(guid), role=Role.VIEWER, client_accounts=["*"]
    )
    with pytest.raises(ValueError, match="user_id"):
        parse(json.dumps({"tokens": [entry]}), "test")

    with pytest.raises(SystemExit, match="plain http"):
        JwtVerifier("http://keys.example.test/jwks", issuer="i", audience="a")
    JwtVerifier("http://keys.example.test/jwks", issuer="i", audience="a", allow_insecure=True)

    tokens_path = tmp_path / "tokens.json"
    opaque = new_token()
    tokens_path.write_text(
        json.dumps(
            {
                "tokens": [
                    token_entry(
                        opaque, user_id=tenant.user_id, role=Role.VIEWER, client_accounts=["*"]
                    )
                ]
            }
        )
    )
    tokens = TokenFile(tokens_path)
    assert tokens.principal(opaque) is not None
    tokens_path.unlink()  # deleting the file revokes every token
    await asyncio.sleep(1.1)
    assert tokens.principal(opaque) is None
