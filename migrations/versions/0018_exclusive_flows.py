"""Whether a master flow was created exclusive: ``orchestrator.flows.exclusive``.

A flow FAILED in DATA_IMPORT (its import did not exist: nothing was built from it) no longer
counts as its engagement's incomplete discovery flow, so it does not block CreateFlow. A
retry of it makes it incomplete again; if it was created exclusive (a discovery flow without
``allow_concurrent``), RetryPhase then checks the engagement as CreateFlow did, and that needs
to know how the flow was created. CreateFlow writes the column.

Existing rows read true, the conservative reading: which of them were created with
``allow_concurrent`` was not recorded. True can at worst refuse a retry beside another
incomplete flow (INCOMPLETE_FLOW_EXISTS, which the client can meet by finishing or cancelling
that flow, or by creating a new flow with ``allow_concurrent``); false could let an exclusive
flow run again beside another incomplete flow, the state exclusivity exists to prevent.

A constant default: PostgreSQL adds the column without rewriting the table.

Revision ID: 0018
Revises: 0017
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE orchestrator.flows ADD COLUMN exclusive boolean NOT NULL DEFAULT true")


def downgrade() -> None:
    op.execute("ALTER TABLE orchestrator.flows DROP COLUMN exclusive")
