"""The service-to-service RPCs moved to internal services (flowpair.internal.v1): messages
already in the outbox are re-addressed so an upgrade with undelivered messages loses none.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

from flowpair_shared.sqlscript import statements

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (old method, new method, old payload type, new payload type)
_MOVES = (
    (
        "/flowpair.v1.DiscoveryService/CreateChildFlow",
        "/flowpair.internal.v1.ChildFlowService/CreateChildFlow",
        "flowpair.v1.CreateChildFlowRequest",
        "flowpair.internal.v1.CreateChildFlowRequest",
    ),
    (
        "/flowpair.v1.DiscoveryService/RunPhase",
        "/flowpair.internal.v1.ChildFlowService/RunPhase",
        "flowpair.v1.RunPhaseRequest",
        "flowpair.internal.v1.RunPhaseRequest",
    ),
    (
        "/flowpair.v1.DiscoveryService/CancelChildFlow",
        "/flowpair.internal.v1.ChildFlowService/CancelChildFlow",
        "flowpair.v1.CancelChildFlowRequest",
        "flowpair.internal.v1.CancelChildFlowRequest",
    ),
    (
        "/flowpair.v1.FlowEventService/RecordPhaseStatus",
        "/flowpair.internal.v1.FlowEventService/RecordPhaseStatus",
        "flowpair.v1.RecordPhaseStatusRequest",
        "flowpair.internal.v1.RecordPhaseStatusRequest",
    ),
)

# The messages' bytes are unchanged: the moved messages kept their fields and numbers.
_RENAME = """
UPDATE messaging.outbox SET method = '{new}', message_type = '{new_type}'
WHERE method = '{old}';
"""


def _script(forward: bool) -> str:
    out = ["SELECT set_config('flowpair.scope', 'system', true);"]
    for old, new, old_type, new_type in _MOVES:
        if not forward:
            old, new, old_type, new_type = new, old, new_type, old_type
        out.append(_RENAME.format(old=old, new=new, new_type=new_type))
    return "\n".join(out)


def upgrade() -> None:
    for statement in statements(_script(forward=True)):
        op.execute(statement)


def downgrade() -> None:
    for statement in statements(_script(forward=False)):
        op.execute(statement)
