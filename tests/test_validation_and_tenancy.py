"""Bad input gets INVALID_ARGUMENT with field violations; other tenants see NOT_FOUND."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from flowpair.internal.v1 import child_flow_service_pb2 as child_pb2
from flowpair.internal.v1 import flow_event_service_pb2 as events_pb2
from flowpair.v1 import discovery_pb2, flow_pb2, orchestrator_pb2
from tests.support import Stack, discovery_flow, md, new_tenant, peer_md


def violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The BadRequest field violations carried in the rich status."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status in the trailers"
    out: dict[str, str] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.update({v.field: v.description for v in bad.field_violations})
    return out


async def invalid(call: Callable[[], Awaitable[Any]]) -> dict[str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    return violations(err.value)


GOOD_FLOW = discovery_flow()


@pytest.fixture
async def servers(stack: Stack) -> Stack:
    await stack.start_orchestrator()
    await stack.start_discovery()
    return stack


async def test_missing_and_malformed_tenant_metadata(servers: Stack) -> None:
    orch = servers.orchestrator()
    req = orchestrator_pb2.CreateFlowRequest(flow=GOOD_FLOW)
    token_only = tuple((k, v) for k, v in md(new_tenant()) if k == "authorization")
    v = await invalid(lambda: orch.CreateFlow(req, metadata=token_only))
    assert set(v) == {"metadata.x-client-account-id", "metadata.x-engagement-id"}
    tenant = dict(md(new_tenant()))
    tenant["x-engagement-id"] = "not-a-uuid"
    v = await invalid(lambda: orch.CreateFlow(req, metadata=tuple(tenant.items())))
    assert set(v) == {"metadata.x-engagement-id"}
    assert "must be a UUID" in v["metadata.x-engagement-id"]
    disc = servers.discovery()
    v = await invalid(
        lambda: disc.GetChildFlow(
            discovery_pb2.GetChildFlowRequest(name=f"childFlows/{uuid.uuid4()}"),
            metadata=token_only,
        )
    )
    assert "metadata.x-client-account-id" in v


async def test_create_flow_field_violations(servers: Stack) -> None:
    orch, meta = servers.orchestrator(), md(new_tenant())
    v = await invalid(lambda: orch.CreateFlow(orchestrator_pb2.CreateFlowRequest(), metadata=meta))
    assert {"flow", "flow.type"} <= set(v)
    v = await invalid(
        lambda: orch.CreateFlow(
            orchestrator_pb2.CreateFlowRequest(
                flow=orchestrator_pb2.Flow(type=flow_pb2.FLOW_TYPE_UNSPECIFIED)
            ),
            metadata=meta,
        )
    )
    assert "FLOW_TYPE_UNSPECIFIED" in v["flow.type"]
    v = await invalid(
        lambda: orch.CreateFlow(
            orchestrator_pb2.CreateFlowRequest(
                flow=orchestrator_pb2.Flow(
                    type=flow_pb2.FLOW_TYPE_DISCOVERY, display_name="x" * 201
                ),
                request_id="12345",
            ),
            metadata=meta,
        )
    )
    assert set(v) == {"flow.display_name", "request_id", "flow.data_import"}
    v = await invalid(
        lambda: orch.CreateFlow(
            orchestrator_pb2.CreateFlowRequest(
                flow=orchestrator_pb2.Flow(type=flow_pb2.FlowType.ValueType(99))
            ),
            metadata=meta,
        )
    )
    assert "unknown value 99" in v["flow.type"]
    # Nothing was written by any of the refused calls.
    assert not (await orch.ListFlows(orchestrator_pb2.ListFlowsRequest(), metadata=meta)).flows


async def test_malformed_names_tokens_and_filters(servers: Stack) -> None:
    orch, disc, meta = servers.orchestrator(), servers.discovery(), md(new_tenant())
    for bad in ("", "flows/", "flows/123", "childFlows/" + str(uuid.uuid4()), str(uuid.uuid4())):
        request = orchestrator_pb2.GetFlowRequest(name=bad)
        v = await invalid(partial(orch.GetFlow, request, metadata=meta))
        assert "name" in v
    v = await invalid(
        lambda: orch.ListFlows(
            orchestrator_pb2.ListFlowsRequest(page_token="garbage!"), metadata=meta
        )
    )
    assert "page_token" in v
    v = await invalid(
        lambda: orch.ListFlows(
            orchestrator_pb2.ListFlowsRequest(filter="status = SLEEPING"), metadata=meta
        )
    )
    assert "filter" in v
    v = await invalid(
        lambda: orch.ListFlows(orchestrator_pb2.ListFlowsRequest(page_size=-1), metadata=meta)
    )
    assert "page_size" in v
    child_flows, peer_meta = servers.child_flows(), peer_md(new_tenant())
    v = await invalid(
        lambda: child_flows.CreateChildFlow(
            child_pb2.CreateChildFlowRequest(
                master_flow="flows/nope", type=flow_pb2.FLOW_TYPE_UNSPECIFIED
            ),
            metadata=peer_meta,
        )
    )
    assert {"master_flow", "type"} <= set(v)
    v = await invalid(lambda: disc.GetChildFlow(discovery_pb2.GetChildFlowRequest(), metadata=meta))
    assert "name" in v
    v = await invalid(
        lambda: child_flows.CreateChildFlow(
            child_pb2.CreateChildFlowRequest(
                master_flow=f"flows/{uuid.uuid4()}", type=flow_pb2.FLOW_TYPE_DISCOVERY
            ),
            metadata=(*peer_meta, ("x-message-id", "nope")),
        )
    )
    assert "metadata.x-message-id" in v
    events = servers.flow_events()
    v = await invalid(
        lambda: events.RecordPhaseStatus(events_pb2.RecordPhaseStatusRequest(), metadata=peer_meta)
    )
    assert {"event.flow", "event.phase", "event.status", "event.sequence"} <= set(v)


async def test_other_tenants_flow_is_not_found(servers: Stack) -> None:
    orch, disc = servers.orchestrator(), servers.discovery()
    owner, stranger = new_tenant(), new_tenant()
    flow = (
        await orch.CreateFlow(
            orchestrator_pb2.CreateFlowRequest(flow=GOOD_FLOW), metadata=md(owner)
        )
    ).flow
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await orch.GetFlow(orchestrator_pb2.GetFlowRequest(name=flow.name), metadata=md(stranger))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # Same account, other engagement: still another tenant.
    sibling = dict(md(owner))
    sibling["x-engagement-id"] = str(uuid.uuid4())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await orch.GetFlow(
            orchestrator_pb2.GetFlowRequest(name=flow.name), metadata=tuple(sibling.items())
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert not (
        await orch.ListFlows(orchestrator_pb2.ListFlowsRequest(), metadata=md(stranger))
    ).flows
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await disc.GetChildFlow(
            discovery_pb2.GetChildFlowRequest(master_flow=flow.name), metadata=md(stranger)
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_flows_pages_and_filters(servers: Stack) -> None:
    orch, tenant = servers.orchestrator(), new_tenant()
    created = [
        (
            await orch.CreateFlow(
                orchestrator_pb2.CreateFlowRequest(flow=GOOD_FLOW), metadata=md(tenant)
            )
        ).flow.name
        for _ in range(7)
    ]
    seen: list[str] = []
    token = ""
    while True:
        page = await orch.ListFlows(
            orchestrator_pb2.ListFlowsRequest(page_size=3, page_token=token), metadata=md(tenant)
        )
        seen += [f.name for f in page.flows]
        assert len(page.flows) <= 3
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(created))
    first = await orch.ListFlows(
        orchestrator_pb2.ListFlowsRequest(page_size=3), metadata=md(tenant)
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await orch.ListFlows(
            orchestrator_pb2.ListFlowsRequest(
                page_size=3, page_token=first.next_page_token, filter="status = COMPLETED"
            ),
            metadata=md(tenant),
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    done = await orch.ListFlows(
        orchestrator_pb2.ListFlowsRequest(filter="status = FLOW_STATUS_COMPLETED"),
        metadata=md(tenant),
    )
    assert not done.flows
    either = await orch.ListFlows(
        orchestrator_pb2.ListFlowsRequest(
            filter="status = INITIALIZING OR status = RUNNING OR status = FAILED"
        ),
        metadata=md(tenant),
    )
    assert len(either.flows) == 7
