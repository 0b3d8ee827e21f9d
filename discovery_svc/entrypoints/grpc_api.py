"""gRPC layer of the discovery service: validate and translate, call a handler, translate back."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import grpc

from discovery_svc.domain.findings import RULES, DataIssue, IssueKind, PhaseSummary
from discovery_svc.domain.imports import ImportSummary
from discovery_svc.domain.inventory import Asset
from discovery_svc.domain.mapping_set import (
    ETAG_FORMAT,
    REQUIRED,
    TARGET_ATTRIBUTES,
    FieldMapping,
    Update,
)
from discovery_svc.domain.model import ChildFlow
from discovery_svc.domain.profile import DataProfile, Severity
from discovery_svc.entrypoints.vocabularies import (
    ASSET_TYPE,
    CRITICALITY,
    DEPENDENCY_KIND,
    ENVIRONMENT,
    OS_FAMILY,
)
from discovery_svc.service_layer.handlers import Discovery
from discovery_svc.service_layer.uploads import UploadRequest, UploadSlots
from flowpair.v1 import discovery_pb2, discovery_pb2_grpc, flow_pb2
from flowpair_shared import tenancy
from flowpair_shared.convert import phase_state, timestamp
from flowpair_shared.errors import FieldViolation, InvalidArgument, Validator
from flowpair_shared.inputs import check_length, check_text
from flowpair_shared.names import (
    CHILD_FLOWS,
    FLOWS,
    IMPORTS,
    format_name,
    parse_name,
    parse_uuid,
)

Context = grpc.aio.ServicerContext[Any, Any]
MAX_FILE_NAME = 255
MAX_ETAG = 64
MAX_UPDATES = 2000
"""As many as an upload can have columns."""
MAX_SOURCE_COLUMN = 1 << 20
"""A column name is at most the longest header row an upload accepts."""
MAX_WAIVERS = 100
MAX_ADDITIONAL_TARGETS = 32


def summary_to_proto(s: PhaseSummary) -> discovery_pb2.PhaseSummary:
    return discovery_pb2.PhaseSummary(
        phase=flow_pb2.Phase.ValueType(int(s.phase)),
        rows_in=s.rows_in,
        rows_out=s.rows_out,
        issue_counts=[
            discovery_pb2.DataIssueCount(
                kind=discovery_pb2.DataIssueKind.Value(f"DATA_ISSUE_KIND_{c.kind.name}"),
                count=c.count,
                row_count=c.row_count,
            )
            for c in s.issue_counts
        ],
        assets_created=s.assets_created,
        assets_updated=s.assets_updated,
        assets_merged=s.assets_merged,
        dependencies=s.dependencies,
    )


def issue_to_proto(
    i: DataIssue,
    master_flow_id: uuid.UUID,
    import_id: uuid.UUID | None,
    columns: Mapping[str, tuple[str, ...]],
) -> discovery_pb2.DataIssue:
    rule = RULES[i.kind]
    attribute = "" if rule.whole_row else i.attribute
    return discovery_pb2.DataIssue(
        name=f"{format_name(FLOWS, master_flow_id)}/dataIssues/{i.id}",
        kind=discovery_pb2.DataIssueKind.Value(f"DATA_ISSUE_KIND_{i.kind.name}"),
        severity=discovery_pb2.FlagSeverity.ValueType(int(rule.severity)),
        phase=flow_pb2.Phase.ValueType(int(rule.phase)),
        row=f"{format_name(IMPORTS, import_id)}/rows/{i.row_number}" if import_id else "",
        row_number=i.row_number,
        attribute=attribute,
        source_columns=columns.get(attribute, ()) if attribute else (),
        value=i.value,
        problem=i.problem,
    )


def child_to_proto(
    child: ChildFlow, summaries: Sequence[PhaseSummary] = ()
) -> discovery_pb2.ChildFlow:
    proto = discovery_pb2.ChildFlow(
        name=format_name(CHILD_FLOWS, child.id),
        master_flow=format_name(FLOWS, child.master_flow_id),
        type=flow_pb2.FlowType.ValueType(int(child.flow_type)),
        display_name=child.display_name,
        status=flow_pb2.FlowStatus.ValueType(int(child.status)),
        phases=[
            phase_state(phase, status, child.phase_times.get(phase), child.phase_errors.get(phase))
            for phase, status in child.phases.items()
        ],
        create_time=timestamp(child.create_time),
        update_time=timestamp(child.update_time),
        phase_summaries=[summary_to_proto(s) for s in summaries],
    )
    proto.data_import = format_name(IMPORTS, child.import_id) if child.import_id else ""
    return proto


def import_to_proto(summary: ImportSummary) -> discovery_pb2.Import:
    return discovery_pb2.Import(
        name=format_name(IMPORTS, summary.id),
        file_name=summary.file_name,
        row_count=summary.row_count,
        columns=summary.columns,
        delimiter=summary.delimiter,
        had_bom=summary.had_bom,
        quarantined_row_count=summary.quarantined_count,
        quarantined_rows=[
            discovery_pb2.QuarantinedRow(
                line_number=q.line_number, reason=q.reason, excerpt=q.excerpt
            )
            for q in summary.quarantined
        ],
        byte_count=summary.byte_count,
        create_time=timestamp(summary.create_time),
    )


def _kind(value: str) -> discovery_pb2.ValueKind.ValueType:
    return discovery_pb2.ValueKind.Value(f"VALUE_KIND_{value.upper()}")


def profile_to_proto(profile: DataProfile) -> discovery_pb2.DataProfile:
    proto = discovery_pb2.DataProfile(
        flow=format_name(FLOWS, uuid.UUID(profile.master_flow_id)),
        row_count=profile.row_count,
        columns=[
            discovery_pb2.ColumnProfile(
                name=c.name,
                position=c.position,
                null_fraction=c.null_fraction,
                distinct_count=c.distinct_count,
                inferred_type=_kind(c.inferred_type),
                patterns=[
                    discovery_pb2.PatternMatch(kind=_kind(k), fraction=f) for k, f in c.patterns
                ],
                sample_values=c.sample_values,
            )
            for c in profile.columns
        ],
        duplicate_keys=[
            discovery_pb2.DuplicateKey(
                column=d.column,
                duplicate_value_count=d.duplicate_value_count,
                affected_row_count=d.affected_row_count,
                examples=d.examples,
            )
            for d in profile.duplicate_keys
        ],
        flags=[
            discovery_pb2.DataFlag(
                severity=discovery_pb2.FlagSeverity.ValueType(int(f.severity)),
                code=f.code,
                column=f.column,
                message=f.message,
            )
            for f in profile.flags
        ],
        create_time=timestamp(profile.create_time),
    )
    proto.data_import = format_name(IMPORTS, uuid.UUID(profile.import_id))
    return proto


ASSETS = "assets"


def mapping_to_proto(m: FieldMapping) -> discovery_pb2.FieldMapping:
    return discovery_pb2.FieldMapping(
        source_column=m.source_column,
        position=m.position,
        target_attribute=m.target_attribute or "",
        confidence=m.confidence,
        reason=m.reason,
        state=discovery_pb2.MappingState.Value(f"MAPPING_STATE_{m.state.name}"),
        alternatives=m.alternatives,
        custom_attribute=m.custom_attribute or "",
        additional_target_attributes=m.also_targets,
        warnings=m.warnings,
    )


def asset_to_proto(a: Asset) -> discovery_pb2.Asset:
    return discovery_pb2.Asset(
        name=format_name(ASSETS, a.id),
        asset_type=ASSET_TYPE.number(a.asset_type),
        display_name=a.display_name,
        hostname=a.hostname or "",
        domain=a.domain or "",
        ip_address=a.ip_address or "",
        operating_system=a.operating_system or "",
        os_family=OS_FAMILY.number(a.os_family),
        os_version=a.os_version or "",
        cpu_cores=a.cpu_cores or 0,
        memory_gb=a.memory_gb or 0.0,
        storage_gb=a.storage_gb or 0.0,
        environment=ENVIRONMENT.number(a.environment),
        application_name=a.application_name or "",
        owner=a.owner or "",
        location=a.location or "",
        business_criticality=CRITICALITY.number(a.business_criticality),
        serial_number=a.serial_number or "",
        attributes={k: v if isinstance(v, str) else json.dumps(v) for k, v in a.attributes.items()},
        source_rows=[f"{format_name(IMPORTS, i)}/rows/{n}" for i, n in a.source_rows],
        update_time=timestamp(a.update_time),
    )


def required_name(value: str, collection: str, field: str, v: Validator) -> uuid.UUID:
    """A required resource name's id; every violation collected so far is raised first."""
    found = parse_name(value, collection, field, v)
    v.raise_if_any()
    assert found is not None
    return found


def master_name(value: str, v: Validator) -> uuid.UUID:
    return required_name(value, FLOWS, "master_flow", v)


async def _chunks(
    requests: AsyncIterator[discovery_pb2.UploadImportDataRequest],
) -> AsyncIterator[bytes]:
    async for request in requests:
        if request.WhichOneof("content") != "chunk":
            raise InvalidArgument(
                [FieldViolation("metadata", "only the first message may carry metadata")]
            )
        yield request.chunk


class DiscoveryServicer(discovery_pb2_grpc.DiscoveryServiceServicer):
    def __init__(self, discovery: Discovery, *, uploads: UploadSlots) -> None:
        self._d = discovery
        self.uploads = uploads

    async def GetChildFlow(
        self, request: discovery_pb2.GetChildFlowRequest, context: Context
    ) -> discovery_pb2.GetChildFlowResponse:
        v = Validator()
        if bool(request.name) == bool(request.master_flow):
            v.add("name", "set exactly one of name or master_flow")
        child_id = parse_name(request.name, CHILD_FLOWS, "name", v, required=False)
        master = parse_name(request.master_flow, FLOWS, "master_flow", v, required=False)
        v.raise_if_any()
        tenant = tenancy.current()
        child = await self._d.get_child_flow(tenant, child_id=child_id, master_flow_id=master)
        summaries = await self._d.phase_summaries(child)
        return discovery_pb2.GetChildFlowResponse(child_flow=child_to_proto(child, summaries))

    async def UploadImportData(
        self,
        request_iterator: AsyncIterator[discovery_pb2.UploadImportDataRequest],
        context: Context,
    ) -> discovery_pb2.UploadImportDataResponse:
        with self.uploads.take():  # before anything is read or a connection is taken
            return await self._upload(request_iterator)

    async def _upload(
        self, request_iterator: AsyncIterator[discovery_pb2.UploadImportDataRequest]
    ) -> discovery_pb2.UploadImportDataResponse:
        first = await anext(aiter(request_iterator), None)
        v = Validator()
        if first is None or first.WhichOneof("content") != "metadata":
            v.add("metadata", "the first message must carry metadata")
            v.raise_if_any()
        assert first is not None
        meta = first.metadata
        import_id = parse_uuid(meta.import_id, "metadata.import_id", v, required=False)
        check_text(meta.file_name, "metadata.file_name", v, max_length=MAX_FILE_NAME)
        v.raise_if_any()
        summary = await self._d.upload(
            tenancy.current(),
            UploadRequest(import_id=import_id, file_name=meta.file_name),
            _chunks(request_iterator),
        )
        return discovery_pb2.UploadImportDataResponse(data_import=import_to_proto(summary))

    async def GetImport(
        self, request: discovery_pb2.GetImportRequest, context: Context
    ) -> discovery_pb2.GetImportResponse:
        v = Validator()
        import_id = required_name(request.name, IMPORTS, "name", v)
        summary = await self._d.get_import(tenancy.current(), import_id)
        return discovery_pb2.GetImportResponse(data_import=import_to_proto(summary))

    async def GetDataProfile(
        self, request: discovery_pb2.GetDataProfileRequest, context: Context
    ) -> discovery_pb2.GetDataProfileResponse:
        master = master_name(request.master_flow, Validator())
        profile = await self._d.get_profile(tenancy.current(), master)
        return discovery_pb2.GetDataProfileResponse(profile=profile_to_proto(profile))

    async def ListFieldMappings(
        self, request: discovery_pb2.ListFieldMappingsRequest, context: Context
    ) -> discovery_pb2.ListFieldMappingsResponse:
        master = master_name(request.master_flow, Validator())
        found = await self._d.list_mappings(tenancy.current(), master)
        return discovery_pb2.ListFieldMappingsResponse(
            mappings=[mapping_to_proto(m) for m in found.mappings],
            etag=found.etag,
            missing_required_attributes=found.missing_required(),
            approved=found.approved,
            confidence_threshold=found.threshold,
            target_attributes=TARGET_ATTRIBUTES,
            required_attributes=REQUIRED,
            waived_required_attributes=found.waived,
        )

    async def UpdateFieldMappings(
        self, request: discovery_pb2.UpdateFieldMappingsRequest, context: Context
    ) -> discovery_pb2.UpdateFieldMappingsResponse:
        v = Validator()
        # Required: an edit without one could overwrite a change its author never saw.
        if not request.etag:
            v.add("etag", "is required: the etag ListFieldMappings (or the last update) returned")
        elif len(request.etag) > MAX_ETAG:
            v.add("etag", f"must be at most {MAX_ETAG} characters, got {len(request.etag)}")
        elif not ETAG_FORMAT.fullmatch(request.etag):
            # One violation for the field: a control character if it has one, else that it
            # is no etag of ours.
            before = len(v.violations)
            check_text(request.etag, "etag", v, max_length=MAX_ETAG)
            if len(v.violations) == before:
                v.add("etag", 'is not an etag of a mapping set: expected W/"<version>" as returned')
        if len(request.updates) > MAX_UPDATES:
            v.add("updates", f"must have at most {MAX_UPDATES} items, got {len(request.updates)}")
            v.raise_if_any()
        waive = list(request.waive_required_attributes)
        if len(waive) > MAX_WAIVERS:
            v.add(
                "waive_required_attributes",
                f"must have at most {MAX_WAIVERS} items, got {len(waive)}",
            )
            v.raise_if_any()
        updates = []
        for i, u in enumerate(request.updates):
            action = u.WhichOneof("action")
            check_length(
                u.source_column, f"updates[{i}].source_column", v, max_length=MAX_SOURCE_COLUMN
            )
            if not u.source_column:
                v.add(f"updates[{i}].source_column", "is required")
            if action is None:
                v.add(
                    f"updates[{i}]",
                    "set one of approve, reject, remap_to, custom_attribute,"
                    " set_additional_targets",
                )
            also: tuple[str, ...] | None = None
            if action == "set_additional_targets":
                also = tuple(u.set_additional_targets.target_attributes)
                if len(also) > MAX_ADDITIONAL_TARGETS:
                    v.add(
                        f"updates[{i}].set_additional_targets.target_attributes",
                        f"must have at most {MAX_ADDITIONAL_TARGETS} items, got {len(also)}",
                    )
                    also = None
            updates.append(
                Update(
                    source_column=u.source_column,
                    approve=action == "approve" and u.approve,
                    reject=action == "reject" and u.reject,
                    remap_to=u.remap_to if action == "remap_to" else None,
                    custom_attribute=u.custom_attribute if action == "custom_attribute" else None,
                    also_map_to=also,
                )
            )
        master = master_name(request.master_flow, v)
        changed = await self._d.update_mappings(
            tenancy.current(),
            master,
            etag=request.etag,
            updates=updates,
            approve=request.approve,
            waive=waive,
        )
        return discovery_pb2.UpdateFieldMappingsResponse(
            mappings=[mapping_to_proto(m) for m in changed.mappings],
            etag=changed.etag,
            missing_required_attributes=changed.missing_required(),
            approved=changed.approved,
            waived_required_attributes=changed.waived,
        )

    async def ListAssets(
        self, request: discovery_pb2.ListAssetsRequest, context: Context
    ) -> discovery_pb2.ListAssetsResponse:
        v = Validator()
        asset_type = ASSET_TYPE.word(request.asset_type, "asset_type", v)
        environment = ENVIRONMENT.word(request.environment, "environment", v)
        v.raise_if_any()
        found, token, total = await self._d.list_assets(
            tenancy.current(),
            asset_type=asset_type or "",
            environment=environment or "",
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return discovery_pb2.ListAssetsResponse(
            assets=[asset_to_proto(a) for a in found], next_page_token=token, total_size=total
        )

    async def GetAsset(
        self, request: discovery_pb2.GetAssetRequest, context: Context
    ) -> discovery_pb2.GetAssetResponse:
        v = Validator()
        asset_id = required_name(request.name, ASSETS, "name", v)
        asset = await self._d.get_asset(tenancy.current(), asset_id)
        return discovery_pb2.GetAssetResponse(asset=asset_to_proto(asset))

    async def ListDependencies(
        self, request: discovery_pb2.ListDependenciesRequest, context: Context
    ) -> discovery_pb2.ListDependenciesResponse:
        v = Validator()
        asset_id = parse_name(request.asset, ASSETS, "asset", v, required=False)
        v.raise_if_any()
        found, token = await self._d.list_dependencies(
            tenancy.current(),
            asset_id=asset_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return discovery_pb2.ListDependenciesResponse(
            dependencies=[
                discovery_pb2.Dependency(
                    source=format_name(ASSETS, d.source),
                    target=format_name(ASSETS, d.target),
                    kind=DEPENDENCY_KIND.number(d.kind),
                    source_display_name=d.source_name,
                    target_display_name=d.target_name,
                    evidence=d.evidence,
                )
                for d in found
            ],
            next_page_token=token,
        )

    async def ListDataIssues(
        self, request: discovery_pb2.ListDataIssuesRequest, context: Context
    ) -> discovery_pb2.ListDataIssuesResponse:
        v = Validator()
        kind: IssueKind | None = None
        if request.kind:
            try:
                kind = IssueKind[discovery_pb2.DataIssueKind.Name(request.kind)[16:]]
            except (ValueError, KeyError):
                v.add("kind", f"unknown data issue kind {request.kind}")
        severity: Severity | None = None
        if request.severity:
            try:
                severity = Severity(request.severity)
            except ValueError:
                v.add("severity", f"unknown severity {request.severity}")
        check_length(request.source_column, "source_column", v, max_length=MAX_SOURCE_COLUMN)
        if request.row_number < 0:
            v.add("row_number", "must not be negative")
        master = master_name(request.master_flow, v)
        child, found, columns, token, total = await self._d.list_data_issues(
            tenancy.current(),
            master,
            kind=kind,
            severity=severity,
            source_column=request.source_column,
            row_number=request.row_number or None,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return discovery_pb2.ListDataIssuesResponse(
            data_issues=[issue_to_proto(i, master, child.import_id, columns) for i in found],
            next_page_token=token,
            total_size=total,
        )
