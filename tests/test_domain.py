"""Pure domain: enums mirror the protos, transition tables, the master flow aggregate."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import IntEnum

import pytest
from google.protobuf.descriptor import EnumDescriptor

from flowpair.v1 import flow_pb2
from flowpair_shared.domain import (
    FLOW_TRANSITIONS,
    PHASE_TRANSITIONS,
    FlowStatus,
    FlowType,
    IllegalTransition,
    Phase,
    PhaseStatus,
    check_flow_transition,
)
from flowpair_shared.errors import FailedPrecondition
from orchestrator_svc.domain.model import MasterFlow, PhaseEvent, RunPhase


@pytest.mark.parametrize(
    ("domain", "proto", "prefix"),
    [
        (FlowType, flow_pb2.FlowType.DESCRIPTOR, "FLOW_TYPE_"),
        (FlowStatus, flow_pb2.FlowStatus.DESCRIPTOR, "FLOW_STATUS_"),
        (Phase, flow_pb2.Phase.DESCRIPTOR, "PHASE_"),
        (PhaseStatus, flow_pb2.PhaseStatus.DESCRIPTOR, "PHASE_STATUS_"),
    ],
)
def test_domain_enums_mirror_the_protos(
    domain: type[IntEnum], proto: EnumDescriptor, prefix: str
) -> None:
    wire = {v.name.removeprefix(prefix): v.number for v in proto.values if v.number != 0}
    assert {m.name: m.value for m in domain} == wire


def test_every_state_has_a_row_and_terminal_states_are_final() -> None:
    assert set(FLOW_TRANSITIONS) == set(FlowStatus)
    assert set(PHASE_TRANSITIONS) == set(PhaseStatus)
    assert {s for s in FlowStatus if s.is_terminal} == {FlowStatus.COMPLETED, FlowStatus.CANCELLED}
    with pytest.raises(IllegalTransition, match="current state is CANCELLED"):
        check_flow_transition(FlowStatus.CANCELLED, FlowStatus.PAUSED)


def _flow() -> MasterFlow:
    return MasterFlow(
        id=uuid.uuid4(),
        client_account_id=uuid.uuid4(),
        engagement_id=uuid.uuid4(),
        create_user=uuid.uuid4(),
        flow_type=FlowType.DISCOVERY,
        display_name="",
        auto_approve=False,
    )


def _event(
    flow: MasterFlow, child: uuid.UUID, phase: Phase, status: PhaseStatus, seq: int
) -> PhaseEvent:
    return PhaseEvent(flow.id, child, phase, status, seq, datetime.now(UTC))


def test_apply_is_ordered_idempotent_and_checked() -> None:
    flow, child = _flow(), uuid.uuid4()
    t = flow.apply(_event(flow, child, Phase.INITIALIZATION, PhaseStatus.COMPLETED, 1))
    assert t is not None and t.sequence == 1
    assert flow.status == FlowStatus.RUNNING and flow.child_flow_id == child
    assert flow.commands == [RunPhase(Phase.DATA_IMPORT)]
    assert flow.apply(_event(flow, child, Phase.INITIALIZATION, PhaseStatus.COMPLETED, 1)) is None
    with pytest.raises(FailedPrecondition, match="arrived before"):
        flow.apply(_event(flow, child, Phase.DATA_IMPORT, PhaseStatus.RUNNING, 3))
    with pytest.raises(FailedPrecondition, match="linked to child"):
        flow.apply(_event(flow, uuid.uuid4(), Phase.DATA_IMPORT, PhaseStatus.RUNNING, 2))
    with pytest.raises(IllegalTransition, match="phase INITIALIZATION"):
        flow.apply(_event(flow, child, Phase.INITIALIZATION, PhaseStatus.RUNNING, 2))
    assert flow.last_event_seq == 1  # refused events change nothing
    flow.apply(_event(flow, child, Phase.DATA_IMPORT, PhaseStatus.RUNNING, 2))
    flow.apply(_event(flow, child, Phase.DATA_IMPORT, PhaseStatus.FAILED, 3))
    assert (flow.status, flow.current_phase) == (FlowStatus.FAILED, Phase.DATA_IMPORT)
