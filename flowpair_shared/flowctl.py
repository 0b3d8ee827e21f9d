"""`flowctl`: flowpair from a terminal. Tables for people, ``--json`` for scripts.

Where to connect and as whom comes from flags, else the environment, else a config file
(``FLOWCTL_CONFIG``, default ``~/.config/flowctl.toml``, with keys named as below without
``FLOWPAIR_``, in lower case: ``engagement = "..."``, ``token_file = "..."``), else the
defaults of ``make run``::

    FLOWPAIR_ORCHESTRATOR  orchestrator address    127.0.0.1:50051
    FLOWPAIR_DISCOVERY     discovery address       127.0.0.1:50052
    FLOWPAIR_TOKEN_FILE    bearer token file       .data/dev-token
    FLOWPAIR_TOKEN         bearer token (instead of a file)
    FLOWPAIR_ACCOUNT       x-client-account-id
    FLOWPAIR_ENGAGEMENT    x-engagement-id
    FLOWPAIR_CA_FILE       CA of the public ports' TLS (plaintext when unset; --ca-file)

Lists show one page; the next page's token goes to stderr (``--page-token``). ``--json``
prints protobuf's JSON mapping: 64-bit integers as strings, default values left out.

Exit codes: 0 done; 2 bad usage; 3 invalid argument; 4 not found; 5 a precondition failed
(the flow is not in a state that allows it); 6 not authenticated or not allowed; 7 a service
unavailable or overloaded (retry); 8 a watched flow ended FAILED or CANCELLED; 1 anything else.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import grpc
import typer
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table
from rich.text import Text

from flowpair.v1 import (
    discovery_pb2,
    discovery_pb2_grpc,
    flow_pb2,
    operations_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
)
from flowpair_shared.convert import enum_word
from flowpair_shared.tenancy import CLIENT_ACCOUNT_HEADER, ENGAGEMENT_HEADER

T = TypeVar("T")
CHUNK = 1 << 20
ENDED = {"FLOW_STATUS_COMPLETED": 0, "FLOW_STATUS_FAILED": 8, "FLOW_STATUS_CANCELLED": 8}
_EXIT_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: 3,
    grpc.StatusCode.OUT_OF_RANGE: 3,
    grpc.StatusCode.NOT_FOUND: 4,
    grpc.StatusCode.FAILED_PRECONDITION: 5,
    grpc.StatusCode.ABORTED: 5,
    grpc.StatusCode.ALREADY_EXISTS: 5,
    grpc.StatusCode.UNAUTHENTICATED: 6,
    grpc.StatusCode.PERMISSION_DENIED: 6,
    grpc.StatusCode.UNAVAILABLE: 7,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 7,
    grpc.StatusCode.DEADLINE_EXCEEDED: 7,
}

# The option every listing takes: where the previous call left off (it printed the token).
PageToken = Annotated[str, typer.Option(help="the next page's token a previous call printed")]
PageSize = Annotated[int, typer.Option(help="at most this many (the server caps it at 1000)")]
Reason = Annotated[str, typer.Option(help="why, recorded in the flow's history")]

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
out = Console()
err = Console(stderr=True)


@dataclass
class Context:
    orchestrator: orchestrator_pb2_grpc.OrchestratorServiceStub
    discovery: discovery_pb2_grpc.DiscoveryServiceStub
    metadata: tuple[tuple[str, str], ...]
    as_json: bool


@dataclass
class Options:
    """The global options as given; the connection is made from them on first use, so that
    ``flowctl <command> --help`` needs no token or tenant."""

    orchestrator: str | None = None
    discovery: str | None = None
    token_file: str | None = None
    ca_file: str | None = None
    account: str | None = None
    engagement: str | None = None
    as_json: bool = False


_state: dict[str, Any] = {}


def _config() -> dict[str, str]:
    path = Path(os.environ.get("FLOWCTL_CONFIG", "~/.config/flowctl.toml")).expanduser()
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        _fail(2, f"cannot read the config file {path}: {error}")
    return {str(k).lower(): str(v) for k, v in data.items()}


def _setting(flag: str | None, name: str, config: dict[str, str], default: str = "") -> str:
    """A flag, else ``FLOWPAIR_<NAME>``, else the config file's ``<name>``, else ``default``."""
    return flag or os.environ.get(f"FLOWPAIR_{name.upper()}") or config.get(name) or default


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as error:
        _fail(2, f"cannot read the {what} {path}: {error}")


def _token(flag: str | None, config: dict[str, str]) -> str:
    """The bearer token: --token-file, else FLOWPAIR_TOKEN, else FLOWPAIR_TOKEN_FILE, else the
    config file's token, else its token_file, else make run's development token."""
    env = os.environ
    if flag:
        token = _read(flag, "token file")
    elif env.get("FLOWPAIR_TOKEN"):
        token = env["FLOWPAIR_TOKEN"].strip()
    elif env.get("FLOWPAIR_TOKEN_FILE"):
        token = _read(env["FLOWPAIR_TOKEN_FILE"], "token file")
    elif config.get("token"):
        token = config["token"].strip()
    else:
        token = _read(config.get("token_file", ".data/dev-token"), "token file")
    if not token:
        _fail(2, "the token is empty; see --token-file")
    return token


def _fail(code: int, message: str) -> NoReturn:
    # Text, not markup: messages carry the server's words and the data's (a "[/x]" in a
    # column name would be taken for a closing tag).
    err.print(Text.assemble(("error: ", "red"), message))
    raise typer.Exit(code)


@app.callback()
def main(
    orchestrator: str | None = typer.Option(None, help="orchestrator address, HOST:PORT"),
    discovery: str | None = typer.Option(None, help="discovery address, HOST:PORT"),
    token_file: str | None = typer.Option(None, help="file holding the bearer token"),
    ca_file: str | None = typer.Option(None, help="CA of the public ports' TLS certificates"),
    account: str | None = typer.Option(None, help="client account id (x-client-account-id)"),
    engagement: str | None = typer.Option(None, help="engagement id (x-engagement-id)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
) -> None:
    _state["options"] = Options(
        orchestrator, discovery, token_file, ca_file, account, engagement, as_json
    )


def _connect(o: Options) -> Context:
    config = _config()
    token = _token(o.token_file, config)
    account = _setting(o.account, "account", config)
    engagement = _setting(o.engagement, "engagement", config)
    if not account or not engagement:
        _fail(2, "the tenant is required: --account and --engagement (or FLOWPAIR_ACCOUNT...)")
    ca = _setting(o.ca_file, "ca_file", config)
    roots = _read(ca, "CA file").encode() if ca else b""

    def channel(target: str) -> grpc.Channel:
        if not ca:
            return grpc.insecure_channel(target)
        return grpc.secure_channel(target, grpc.ssl_channel_credentials(roots))

    return Context(
        orchestrator_pb2_grpc.OrchestratorServiceStub(
            channel(_setting(o.orchestrator, "orchestrator", config, "127.0.0.1:50051"))
        ),
        discovery_pb2_grpc.DiscoveryServiceStub(
            channel(_setting(o.discovery, "discovery", config, "127.0.0.1:50052"))
        ),
        (
            ("authorization", f"Bearer {token}"),
            (CLIENT_ACCOUNT_HEADER, account),
            (ENGAGEMENT_HEADER, engagement),
        ),
        o.as_json,
    )


def ctx() -> Context:
    context: Context | None = _state.get("context")
    if context is None:
        context = _state["context"] = _connect(_state["options"])
    return context


def call(fn: Callable[..., T], request: Any, *, timeout: float | None = 60) -> T:
    """A call with the context's metadata; a gRPC error exits with its code's exit code and
    the server's message (and field violations)."""
    try:
        return fn(request, metadata=ctx().metadata, timeout=timeout)
    except grpc.RpcError as error:
        _rpc_failed(error)


def _rpc_failed(error: grpc.RpcError) -> NoReturn:
    code: grpc.StatusCode = error.code()
    details: str = error.details() or ""
    _fail(_EXIT_CODES.get(code, 1), f"{code.name}: {details}")


def show(
    message: Message,
    rows: Sequence[Sequence[object]] = (),
    columns: Sequence[str] = (),
    *,
    next_page: str = "",
) -> None:
    """``message`` as JSON with ``--json`` (protobuf's JSON mapping: 64-bit integers as
    strings, fields at their default left out), else a table of ``rows``; where a list has
    more pages, the token for the next one on stderr."""
    if ctx().as_json:
        out.print_json(json.dumps(MessageToDict(message, preserving_proto_field_name=True)))
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))  # the data's text, never markup
    out.print(table)
    if next_page:
        err.print(Text(f"more: run again with --page-token {next_page}"))


# -- imports and flows -------------------------------------------------------------------------


@app.command()
def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
) -> None:
    """Upload a CSV export, with a progress bar; prints the import's name."""
    size = file.stat().st_size
    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=err, disable=ctx().as_json) as progress:
        task = progress.add_task("upload", total=size)

        def requests() -> Iterator[discovery_pb2.UploadImportDataRequest]:
            metadata = discovery_pb2.ImportMetadata(file_name=file.name)
            yield discovery_pb2.UploadImportDataRequest(metadata=metadata)
            with file.open("rb") as f:
                while chunk := f.read(CHUNK):
                    progress.advance(task, len(chunk))
                    yield discovery_pb2.UploadImportDataRequest(chunk=chunk)

        # No deadline: a large file takes as long as it takes to send.
        answer = call(ctx().discovery.UploadImportData, requests(), timeout=None)
    imp = answer.data_import
    show(
        answer,
        [(imp.name, imp.row_count, imp.quarantined_row_count)],
        ("import", "rows", "quarantined"),
    )


@app.command()
def create(
    data_import: str = typer.Option(..., "--import", help='the upload, "imports/{id}"'),
    name: str = typer.Option("", "--name", help="display name"),
    auto_approve: bool = typer.Option(False, help="pass the mapping gate when confident"),
    allow_concurrent: bool = typer.Option(
        False, help="beside the engagement's other incomplete discovery flow"
    ),
) -> None:
    """Create a discovery flow on an upload."""
    flow = orchestrator_pb2.Flow(
        type=flow_pb2.FLOW_TYPE_DISCOVERY,
        display_name=name,
        auto_approve=auto_approve,
        data_import=data_import,
        allow_concurrent=allow_concurrent,
    )
    _flow_call(ctx().orchestrator.CreateFlow, orchestrator_pb2.CreateFlowRequest(flow=flow))


def _enum_arg(enum: Any, prefix: str, text: str, what: str) -> int:
    """The enum value a user's word names (``waiting_for_approval``, ``DATA_IMPORT``); exit 2
    with the words there are."""
    name = prefix + text.upper().removeprefix(prefix)
    names = enum.keys()  # an enum type wrapper is not a container
    if name not in names[1:]:
        words = ", ".join(n.removeprefix(prefix) for n in names[1:])
        _fail(2, f"no {what} {text!r}; one of {words}")
    return int(enum.Value(name))


def _flow_table(message: Message, flow: orchestrator_pb2.Flow) -> None:
    phases = ", ".join(
        enum_word(flow_pb2.Phase, p.phase, "PHASE_")
        + " "
        + enum_word(flow_pb2.PhaseStatus, p.status, "PHASE_STATUS_")
        for p in flow.phases
    )
    show(
        message,
        [(flow.name, enum_word(flow_pb2.FlowStatus, flow.status, "FLOW_STATUS_"), phases)],
        ("flow", "status", "phases"),
    )


def _flow_call(method: Callable[..., Any], request: Message) -> None:
    """Call a method that answers with a flow, and show it."""
    answer = call(method, request)
    _flow_table(answer, answer.flow)


@app.command()
def get(flow: str) -> None:
    """One flow: status and phases."""
    _flow_call(ctx().orchestrator.GetFlow, orchestrator_pb2.GetFlowRequest(name=flow))


@app.command("list")
def list_flows(
    filter_: str = typer.Option("", "--filter", help='e.g. "status = RUNNING"'),
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> None:
    """The tenant's flows, newest first."""
    request = orchestrator_pb2.ListFlowsRequest(
        filter=filter_, page_size=page_size, page_token=page_token
    )
    answer = call(ctx().orchestrator.ListFlows, request)
    rows = [
        (f.name, f.display_name, enum_word(flow_pb2.FlowStatus, f.status, "FLOW_STATUS_"))
        for f in answer.flows
    ]
    show(answer, rows, ("flow", "name", "status"), next_page=answer.next_page_token)


@app.command()
def watch(
    flow: str,
    until: str = typer.Option(
        "", help="stop once the flow has this status, e.g. WAITING_FOR_APPROVAL"
    ),
) -> None:
    """Follow a flow's history live until it ends (or reaches --until). Exit code 8 when it
    ends FAILED or CANCELLED."""
    wanted = until and _enum_arg(flow_pb2.FlowStatus, "FLOW_STATUS_", until, "flow status")
    request = orchestrator_pb2.WatchFlowRequest(name=flow)
    stream = ctx().orchestrator.WatchFlow(request, metadata=ctx().metadata)
    status = ""
    try:
        for response in stream:
            e = response.event
            status = flow_pb2.FlowStatus.Name(e.flow_status)
            reached = bool(wanted) and e.flow_status == wanted
            if ctx().as_json:
                print(json.dumps(MessageToDict(e, preserving_proto_field_name=True)), flush=True)
            else:
                what = enum_word(flow_pb2.FlowEventKind, e.kind, "FLOW_EVENT_KIND_")
                phase = enum_word(flow_pb2.Phase, e.phase, "PHASE_")
                state = enum_word(flow_pb2.PhaseStatus, e.phase_status, "PHASE_STATUS_")
                now = status.removeprefix("FLOW_STATUS_")
                out.print(f"{e.sequence:>4} {what} {phase} {state} → {now}", markup=False)
            if reached:
                stream.cancel()
                return
    except grpc.RpcError as error:
        _rpc_failed(error)
    raise typer.Exit(ENDED.get(status, 0))


# -- mappings --------------------------------------------------------------------------------


def _listed(flow: str) -> discovery_pb2.ListFieldMappingsResponse:
    request = discovery_pb2.ListFieldMappingsRequest(master_flow=flow)
    return call(ctx().discovery.ListFieldMappings, request)


@app.command()
def mappings(flow: str) -> None:
    """The flow's suggested (or approved) mapping of columns to attributes."""
    answer = _listed(flow)
    rows = [
        (
            m.source_column,
            m.target_attribute or m.custom_attribute,
            f"{m.confidence:.2f}",
            enum_word(discovery_pb2.MappingState, m.state, "MAPPING_STATE_"),
        )
        for m in answer.mappings
    ]
    show(answer, rows, ("column", "attribute", "confidence", "state"))
    if not ctx().as_json:
        missing = ", ".join(answer.missing_required_attributes) or "none"
        out.print(f"etag {answer.etag}; missing required attributes: {missing}", markup=False)


@app.command()
def approve(
    flow: str,
    waive_missing: bool = typer.Option(
        False, help="acknowledge the required attributes the export lacks"
    ),
) -> None:
    """Approve the mapping as it stands (the flow moves on by itself)."""
    listed = _listed(flow)
    request = discovery_pb2.UpdateFieldMappingsRequest(
        master_flow=flow,
        etag=listed.etag,
        approve=True,
        waive_required_attributes=listed.missing_required_attributes if waive_missing else [],
    )
    answer = call(ctx().discovery.UpdateFieldMappings, request)
    show(answer, [(flow, answer.approved, answer.etag)], ("flow", "approved", "etag"))


@app.command()
def remap(
    flow: str,
    column: str = typer.Option(..., help="the source column, as the export names it"),
    to: str = typer.Option("", help="map it to this target attribute instead"),
    custom: str = typer.Option("", help="keep it as a custom attribute with this name"),
    reject: bool = typer.Option(False, help="do not use the column"),
    accept: bool = typer.Option(False, help="accept the suggestion for this column"),
) -> None:
    """Edit one column's mapping (with the etag just read); approve the whole set after."""
    if [bool(to), bool(custom), reject, accept].count(True) != 1:
        _fail(2, "name exactly one of --to, --custom, --reject or --accept")
    update = discovery_pb2.FieldMappingUpdate(source_column=column)
    if to:
        update.remap_to = to
    elif custom:
        update.custom_attribute = custom
    elif reject:
        update.reject = True
    else:
        update.approve = True
    request = discovery_pb2.UpdateFieldMappingsRequest(
        master_flow=flow, etag=_listed(flow).etag, updates=[update]
    )
    answer = call(ctx().discovery.UpdateFieldMappings, request)
    changed = [m for m in answer.mappings if m.source_column == column]
    rows = [
        (
            m.source_column,
            m.target_attribute or m.custom_attribute,
            enum_word(discovery_pb2.MappingState, m.state, "MAPPING_STATE_"),
        )
        for m in changed
    ]
    show(answer, rows, ("column", "attribute", "state"))


# -- lifecycle -------------------------------------------------------------------------------


@app.command()
def pause(flow: str, reason: Reason = "") -> None:
    """Pause at the next phase boundary."""
    _flow_call(
        ctx().orchestrator.PauseFlow, orchestrator_pb2.PauseFlowRequest(name=flow, reason=reason)
    )


@app.command()
def resume(flow: str, reason: Reason = "") -> None:
    """Resume a paused flow."""
    _flow_call(
        ctx().orchestrator.ResumeFlow, orchestrator_pb2.ResumeFlowRequest(name=flow, reason=reason)
    )


@app.command()
def cancel(flow: str, reason: Reason = "") -> None:
    """Cancel a flow (final)."""
    _flow_call(
        ctx().orchestrator.CancelFlow, orchestrator_pb2.CancelFlowRequest(name=flow, reason=reason)
    )


@app.command()
def retry(flow: str, phase: str, reason: Reason = "") -> None:
    """Run a failed phase again, e.g. `flowctl retry flows/… DATA_IMPORT`."""
    number = _enum_arg(flow_pb2.Phase, "PHASE_", phase, "phase")
    request = orchestrator_pb2.RetryPhaseRequest(
        name=flow, phase=flow_pb2.Phase.ValueType(number), reason=reason
    )
    _flow_call(ctx().orchestrator.RetryPhase, request)


# -- the inventory ---------------------------------------------------------------------------


@app.command()
def assets(
    asset_type: str = typer.Option("", "--type", help="e.g. database, virtual_machine"),
    environment: str = typer.Option("", help="e.g. production"),
    page_size: PageSize = 100,
    page_token: PageToken = "",
) -> None:
    """The engagement's assets."""
    request = discovery_pb2.ListAssetsRequest(page_size=page_size, page_token=page_token)
    if asset_type:
        number = _enum_arg(discovery_pb2.AssetType, "ASSET_TYPE_", asset_type, "asset type")
        request.asset_type = discovery_pb2.AssetType.ValueType(number)
    if environment:
        number = _enum_arg(discovery_pb2.Environment, "ENVIRONMENT_", environment, "environment")
        request.environment = discovery_pb2.Environment.ValueType(number)
    answer = call(ctx().discovery.ListAssets, request)
    rows = [
        (
            a.display_name,
            enum_word(discovery_pb2.AssetType, a.asset_type, "ASSET_TYPE_", lower=True),
            enum_word(discovery_pb2.Environment, a.environment, "ENVIRONMENT_", lower=True),
            a.operating_system,
            a.ip_address,
        )
        for a in answer.assets
    ]
    show(
        answer,
        rows,
        ("asset", "type", "environment", "os", "ip"),
        next_page=answer.next_page_token,
    )
    if not ctx().as_json:
        out.print(f"{answer.total_size} assets")


@app.command()
def deps(
    page_size: PageSize = 100,
    page_token: PageToken = "",
) -> None:
    """The engagement's dependencies."""
    request = discovery_pb2.ListDependenciesRequest(page_size=page_size, page_token=page_token)
    answer = call(ctx().discovery.ListDependencies, request)
    rows = [
        (
            d.source_display_name,
            enum_word(discovery_pb2.DependencyKind, d.kind, "DEPENDENCY_KIND_", lower=True),
            d.target_display_name,
        )
        for d in answer.dependencies
    ]
    show(answer, rows, ("source", "kind", "target"), next_page=answer.next_page_token)


@app.command()
def issues(
    flow: str,
    page_size: PageSize = 100,
    page_token: PageToken = "",
) -> None:
    """What the flow's phases could not use, and why."""
    request = discovery_pb2.ListDataIssuesRequest(
        master_flow=flow, page_size=page_size, page_token=page_token
    )
    answer = call(ctx().discovery.ListDataIssues, request)
    rows = [(i.row_number, i.attribute, i.value, i.problem) for i in answer.data_issues]
    show(answer, rows, ("row", "attribute", "value", "problem"), next_page=answer.next_page_token)


# -- operations ------------------------------------------------------------------------------


@app.command()
def diagnose(flow: str) -> None:
    """Why a flow is where it is: findings with what to do, messages and phase jobs."""
    answer = call(ctx().orchestrator.DiagnoseFlow, orchestrator_pb2.DiagnoseFlowRequest(name=flow))
    rows = [
        (
            enum_word(operations_pb2.FindingCode, f.code, "FINDING_CODE_"),
            f.detail,
            f.suggested_action + (" (the reconciler repairs it)" if f.repairable else ""),
        )
        for f in answer.findings
    ]
    show(answer, rows, ("finding", "detail", "action"))
    if ctx().as_json:
        return
    child = (
        enum_word(flow_pb2.FlowStatus, answer.child_flow.status, "FLOW_STATUS_")
        if answer.HasField("child_flow")
        else f"unknown ({answer.child_flow_error})"
    )
    master = enum_word(flow_pb2.FlowStatus, answer.flow.status, "FLOW_STATUS_")
    age = answer.last_event_age.ToTimedelta().total_seconds()
    out.print(
        f"master {master}, child {child}; last event #{answer.last_event.sequence} {age:.0f} s ago",
        markup=False,
    )
    for m in answer.messages:
        out.print(f"message {_message_line(m)}", markup=False)
    for j in answer.phase_jobs:
        state = enum_word(operations_pb2.PhaseJobState, j.state, "PHASE_JOB_STATE_")
        phase = enum_word(flow_pb2.Phase, j.phase, "PHASE_")
        out.print(f"job {phase} {state}, attempt {j.attempts}", markup=False)


def _call_name(method: str) -> str:
    """A method path's own name (``RunPhase``)."""
    return method.rsplit("/", 1)[-1]


def _message_line(m: operations_pb2.OutboxMessage) -> str:
    state = enum_word(operations_pb2.MessageState, m.state, "MESSAGE_STATE_")
    to = enum_word(operations_pb2.Peer, m.destination, "PEER_", lower=True)
    error = f": {m.last_error}" if m.last_error else ""
    call_name = _call_name(m.method)
    return f"{m.name} {call_name} to {to} #{m.sequence} {state}, {m.attempts} attempts{error}"


def _peer(text: str) -> operations_pb2.Peer.ValueType:
    if not text:
        return operations_pb2.PEER_UNSPECIFIED
    return operations_pb2.Peer.ValueType(_enum_arg(operations_pb2.Peer, "PEER_", text, "peer"))


@app.command()
def parked(
    flow: str = typer.Option("", help='only this flow\'s, "flows/{id}"'),
    destination: str = typer.Option("", help="only those for orchestrator or discovery"),
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> None:
    """Parked messages (admin): the relay gave up on them; each holds its flow back."""
    request = orchestrator_pb2.ListParkedMessagesRequest(
        flow=flow, destination=_peer(destination), page_size=page_size, page_token=page_token
    )
    answer = call(ctx().orchestrator.ListParkedMessages, request)
    rows = [
        (m.name, m.flow, _call_name(m.method), m.attempts, m.last_error) for m in answer.messages
    ]
    show(
        answer,
        rows,
        ("message", "flow", "call", "attempts", "last error"),
        next_page=answer.next_page_token,
    )


@app.command()
def requeue(
    message: str = typer.Option("", help='one message, "messages/{id}"'),
    flow: str = typer.Option("", help='every parked message of a flow, "flows/{id}"'),
    every: bool = typer.Option(False, "--all", help="every parked message of the tenant"),
    destination: str = typer.Option("", help="only those for orchestrator or discovery"),
    reason: Reason = "",
) -> None:
    """Give parked messages a fresh set of attempts (admin); name exactly one target."""
    if [bool(message), bool(flow), every].count(True) != 1:
        _fail(2, "name exactly one of --message, --flow or --all")
    request = orchestrator_pb2.RequeueMessagesRequest(destination=_peer(destination), reason=reason)
    if message:
        request.message = message
    elif flow:
        request.flow = flow
    else:
        request.all = True
    answer = call(ctx().orchestrator.RequeueMessages, request)
    show(answer, [(m.name, m.flow) for m in answer.messages], ("re-queued", "flow"))


def run() -> None:
    """The console script."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    run()
