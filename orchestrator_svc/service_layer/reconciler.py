"""The reconciler: background work of the orchestrator that finds flows with no progress for
longer than a threshold, diagnoses each, makes the repairs that cannot do harm and reports
the rest.

It reads the quiet flows of every tenant through ``orchestrator.stalled_flows`` (ids and
tenants only, migration 0017), then works on each in that flow's own tenant scope. Replicas
may run it at once: a repair happens under the flow's lock and only if the flow is unchanged
since it was diagnosed, and the repair itself changes the flow, so a second reconciler finds
nothing to do.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from flowpair_shared import db_scope, logs, tenancy
from flowpair_shared.dbfailures import Failure, classify
from flowpair_shared.periodic import Periodic
from flowpair_shared.settings import ReconcileSettings
from flowpair_shared.tenancy import Tenant
from orchestrator_svc.domain.diagnosis import FindingCode
from orchestrator_svc.service_layer.operations import Operations

log = logging.getLogger("flowpair.reconciler")

REPAIRS = Counter("flowpair_reconciler_repairs", "Repairs the reconciler made to quiet flows.")
LEFT = Counter(
    "flowpair_reconciler_unrepaired",
    "Findings on quiet flows the reconciler cannot repair (left to an operator), by code.",
    ["code"],
)
_QUIET = text(
    "SELECT id, client_account_id, engagement_id, create_user, update_time"
    " FROM orchestrator.stalled_flows(:quiet, :after_time, :after_id, :limit)"
)
_REMEMBERED = 10_000
# Findings that explain a quiet flow without anyone having to act.
_EXPECTED = frozenset({FindingCode.PHASE_RUNNING, FindingCode.HEALTHY})


class Reconciler(Periodic):
    def __init__(
        self, *, engine: AsyncEngine, operations: Operations, settings: ReconcileSettings
    ) -> None:
        super().__init__(name="reconciliation", interval=settings.interval, log=log)
        self._engine = engine
        self._ops = operations
        self._settings = settings
        self._after: tuple[datetime, uuid.UUID] | None = None
        """Where the last pass stopped: the next one goes on from there, so flows nobody can
        repair (left quiet forever) never hide the ones behind them."""
        self._reported: dict[uuid.UUID, datetime] = {}
        """The flows reported to an operator, with the last change they had then: reported
        again only once they changed."""

    @property
    def operations(self) -> Operations:
        return self._ops

    async def run_once(self) -> int:
        """One pass over the next batch of quiet flows; the number of flows repaired."""
        after_time, after_id = self._after or (None, None)
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    _QUIET,
                    {
                        "quiet": self._settings.quiet_seconds,
                        "after_time": after_time,
                        "after_id": after_id,
                        "limit": self._settings.batch,
                    },
                )
            ).all()
        # A short page is the end: the next pass starts from the quietest flow again.
        self._after = (rows[-1][4], rows[-1][0]) if len(rows) == self._settings.batch else None
        if len(self._reported) > _REMEMBERED:
            self._reported.clear()
        repaired = 0
        for flow_id, account, engagement, user, changed in rows:
            if self.stopping:
                break
            tenant = Tenant(account, engagement, user)
            try:
                repaired += await self._reconcile(tenant, flow_id, changed)
            except Exception as error:
                if classify(error) is Failure.UNAVAILABLE:
                    raise
                log.exception("reconciling a flow failed", extra={"flow_id": str(flow_id)})
        return repaired

    async def _reconcile(self, tenant: Tenant, flow_id: uuid.UUID, changed: datetime) -> bool:
        token = tenancy.set_current(tenant)
        try:
            with logs.scoped(flow_id=str(flow_id)), db_scope.tenant(tenant):
                outcome = await self._ops.reconcile(tenant, flow_id)
                for what in outcome.done:
                    REPAIRS.inc()
                    log.info("reconciler repaired a flow", extra={"repair": what})
                unrepaired = [f for f in outcome.left if f.code not in _EXPECTED]
                if outcome.done or self._reported.get(flow_id) == changed:
                    unrepaired = []  # repaired, or reported already as it stands
                for finding in unrepaired:
                    LEFT.labels(finding.code.name).inc()
                if unrepaired:
                    self._reported[flow_id] = changed
                    log.warning(
                        "quiet flow needs an operator",
                        extra={
                            "findings": [f.code.name for f in unrepaired],
                            "detail": unrepaired[0].detail,
                        },
                    )
                return bool(outcome.done)
        finally:
            tenancy.reset(token)
