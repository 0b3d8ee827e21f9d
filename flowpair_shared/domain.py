"""Flow and phase state machines: plain Python, no gRPC, no database.

The enum values mirror the protobuf enums in ``protos/flowpair/v1/flow.proto`` number for
number (a test checks it), so conversion at the gRPC boundary is ``Enum(proto_value)``.
One transition table per state machine decides what is legal; nothing compares strings.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class FlowType(enum.IntEnum):
    """Which kind of flow a master flow runs."""

    DISCOVERY = 1


class IdentityKey(enum.IntEnum):
    """How ASSET_INVENTORY tells rows apart (discovery_svc/domain/identity.py); mirrors the
    protos' ``IdentityKey`` by number."""

    HOST_THEN_NAME = 1
    """Host name (short name plus domain), then asset name or asset tag: the default."""
    NAME_AND_SERIAL = 2
    """As the default, but equal names with different serial numbers are different assets."""
    NAME_AND_TAG = 3
    """As the default, but equal names with different asset tags are different assets."""


class FlowStatus(enum.IntEnum):
    """Lifecycle status of a master or child flow."""

    INITIALIZING = 1
    RUNNING = 2
    PAUSED = 3
    WAITING_FOR_APPROVAL = 4
    COMPLETED = 5
    FAILED = 6
    CANCELLED = 7

    @property
    def is_terminal(self) -> bool:
        return not FLOW_TRANSITIONS[self]


class Phase(enum.IntEnum):
    """The phases of a discovery flow, in execution order."""

    INITIALIZATION = 1
    DATA_IMPORT = 2
    DATA_VALIDATION = 3
    ATTRIBUTE_MAPPING = 4
    DATA_CLEANSING = 5
    ASSET_INVENTORY = 6
    DEPENDENCY_ANALYSIS = 7

    @property
    def next(self) -> Phase | None:
        """The phase after this one, or None for the last."""
        try:
            return Phase(self.value + 1)
        except ValueError:
            return None


class PhaseStatus(enum.IntEnum):
    """Status of one phase of one flow."""

    PENDING = 1
    RUNNING = 2
    COMPLETED = 3
    FAILED = 4
    SKIPPED = 5
    WAITING_FOR_APPROVAL = 6


FLOW_TRANSITIONS: Mapping[FlowStatus, frozenset[FlowStatus]] = {
    FlowStatus.INITIALIZING: frozenset(
        {FlowStatus.RUNNING, FlowStatus.PAUSED, FlowStatus.FAILED, FlowStatus.CANCELLED}
    ),
    FlowStatus.RUNNING: frozenset(
        {
            FlowStatus.PAUSED,
            FlowStatus.WAITING_FOR_APPROVAL,
            FlowStatus.COMPLETED,
            FlowStatus.FAILED,
            FlowStatus.CANCELLED,
        }
    ),
    # A paused flow's in-flight phase may still finish: fail, wait for approval, or complete
    # the last phase.
    FlowStatus.PAUSED: frozenset(
        {
            FlowStatus.RUNNING,
            FlowStatus.CANCELLED,
            FlowStatus.FAILED,
            FlowStatus.WAITING_FOR_APPROVAL,
            FlowStatus.COMPLETED,
        }
    ),
    FlowStatus.WAITING_FOR_APPROVAL: frozenset(
        {FlowStatus.RUNNING, FlowStatus.PAUSED, FlowStatus.FAILED, FlowStatus.CANCELLED}
    ),
    FlowStatus.FAILED: frozenset({FlowStatus.RUNNING, FlowStatus.CANCELLED, FlowStatus.PAUSED}),
    FlowStatus.COMPLETED: frozenset(),
    FlowStatus.CANCELLED: frozenset(),
}

PHASE_TRANSITIONS: Mapping[PhaseStatus, frozenset[PhaseStatus]] = {
    # An instantaneous phase (INITIALIZATION) may complete without a separate RUNNING report.
    PhaseStatus.PENDING: frozenset(
        {PhaseStatus.RUNNING, PhaseStatus.COMPLETED, PhaseStatus.FAILED, PhaseStatus.SKIPPED}
    ),
    PhaseStatus.RUNNING: frozenset(
        {PhaseStatus.COMPLETED, PhaseStatus.FAILED, PhaseStatus.WAITING_FOR_APPROVAL}
    ),
    PhaseStatus.WAITING_FOR_APPROVAL: frozenset(
        {PhaseStatus.RUNNING, PhaseStatus.COMPLETED, PhaseStatus.FAILED}
    ),
    # Retry re-runs a failed phase.
    PhaseStatus.FAILED: frozenset({PhaseStatus.RUNNING}),
    PhaseStatus.COMPLETED: frozenset(),
    PhaseStatus.SKIPPED: frozenset(),
}


class IllegalTransition(Exception):
    """A state change the transition table does not allow."""

    def __init__(self, machine: str, current: enum.Enum, target: enum.Enum) -> None:
        super().__init__(
            f"{machine} cannot go from {current.name} to {target.name}"
            f" (current state is {current.name})"
        )
        self.machine = machine
        self.current = current
        self.target = target


def check_flow_transition(current: FlowStatus, target: FlowStatus) -> None:
    """Raise IllegalTransition unless the flow may move from ``current`` to ``target``."""
    if target not in FLOW_TRANSITIONS[current]:
        raise IllegalTransition("flow", current, target)


def check_phase_transition(phase: Phase, current: PhaseStatus, target: PhaseStatus) -> None:
    """Raise IllegalTransition unless ``phase`` may move from ``current`` to ``target``."""
    if target not in PHASE_TRANSITIONS[current]:
        raise IllegalTransition(f"phase {phase.name}", current, target)


class FlowEventKind(enum.IntEnum):
    """What a history entry of a master flow records."""

    CREATED = 1
    PHASE_CHANGED = 2
    PAUSED = 3
    RESUMED = 4
    CANCELLED = 5
    PHASE_RETRIED = 6
    RECONCILED = 7
