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
from sqlalchemy.ext.asyncio import AsyncEngine

from flowpair_shared import db_scope, logs
from flowpair_shared.dbfailures import Failure, classify
from flowpair_shared.periodic import Periodic
from flowpair_shared.settings import ReconcileSettings
from orchestrator_svc.adapters import repository
from orchestrator_svc.domain.diagnosis import FindingCode
from orchestrator_svc.service_layer.operations import Operations

log = logging.getLogger("flowpair.reconciler")

REPAIRS = Counter("flowpair_reconciler_repairs", "Repairs the reconciler made to quiet flows.")
LEFT = Counter(
    "flowpair_reconciler_unrepaired",
    "Findings on quiet flows the reconciler cannot repair (left to an operator), by code.",
    ["code"],
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
        async with self._engine.connect() as conn:
            quiet = await repository.quiet_flows(
                conn,
                quiet_seconds=self._settings.quiet_seconds,
                after=self._after,
                limit=self._settings.batch,
            )
        # A short page is the end: the next pass starts from the quietest flow again.
        last = quiet[-1] if len(quiet) == self._settings.batch else None
        self._after = (last.update_time, last.id) if last else None
        if len(self._reported) > _REMEMBERED:
            self._reported.clear()
        repaired = 0
        for flow in quiet:
            if self.stopping:
                break
            try:
                repaired += await self._reconcile(flow)
            except Exception as error:
                if classify(error) is Failure.UNAVAILABLE:
                    raise
                log.exception("reconciling a flow failed", extra={"flow_id": str(flow.id)})
        return repaired

    async def _reconcile(self, flow: repository.QuietFlow) -> bool:
        with logs.scoped(flow_id=str(flow.id)), db_scope.tenant(flow.tenant):
            outcome = await self._ops.reconcile(flow.tenant, flow.id)
            for what in outcome.done:
                REPAIRS.inc()
                log.info("reconciler repaired a flow", extra={"repair": what})
            unrepaired = [f for f in outcome.left if f.code not in _EXPECTED]
            if outcome.done or self._reported.get(flow.id) == flow.update_time:
                unrepaired = []  # repaired, or reported already as it stands
            for finding in unrepaired:
                LEFT.labels(finding.code.name).inc()
            if unrepaired:
                self._reported[flow.id] = flow.update_time
                log.warning(
                    "quiet flow needs an operator",
                    extra={
                        "findings": [f.code.name for f in unrepaired],
                        "detail": unrepaired[0].detail,
                    },
                )
            return bool(outcome.done)
