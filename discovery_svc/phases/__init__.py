"""Phase handlers, one module per phase; ``HANDLERS`` is the one registry the runner uses."""

from collections.abc import Mapping

from discovery_svc.phases.asset_inventory import AssetInventory
from discovery_svc.phases.attribute_mapping import AttributeMapping
from discovery_svc.phases.base import PhaseHandler
from discovery_svc.phases.data_cleansing import DataCleansing
from discovery_svc.phases.data_import import DataImport
from discovery_svc.phases.data_validation import DataValidation
from discovery_svc.phases.dependency_analysis import DependencyAnalysis
from flowpair_shared.domain import Phase

HANDLERS: Mapping[Phase, PhaseHandler] = {
    h.phase: h
    for h in (
        DataImport(),
        DataValidation(),
        AttributeMapping(),
        DataCleansing(),
        AssetInventory(),
        DependencyAnalysis(),
    )
}
