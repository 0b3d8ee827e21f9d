"""The inventory's closed vocabularies as the contract's enums.

The data keeps the canonical words (``"virtual_machine"``, vocabularies in
``discovery_svc/vocab``); the contract names each as an enum value (``ASSET_TYPE_VIRTUAL_MACHINE``)
so that clients in every language get a closed type instead of strings to compare.
``tests/test_vocabularies.py`` holds the two sets equal.
"""

from __future__ import annotations

from discovery_svc.domain.inventory import DEPENDENCY_KINDS
from discovery_svc.normalize.asset_types import ASSET_TYPES
from discovery_svc.normalize.lookups import CRITICALITIES, ENVIRONMENTS
from discovery_svc.normalize.os import OS_FAMILIES
from flowpair.v1 import discovery_pb2
from flowpair_shared.vocabulary import Vocabulary

__all__ = [
    "ALL",
    "ASSET_TYPE",
    "CRITICALITY",
    "DEPENDENCY_KIND",
    "ENVIRONMENT",
    "OS_FAMILY",
    "Vocabulary",
]

ASSET_TYPE = Vocabulary(discovery_pb2.AssetType, "ASSET_TYPE_", ASSET_TYPES)
ENVIRONMENT = Vocabulary(discovery_pb2.Environment, "ENVIRONMENT_", ENVIRONMENTS)
OS_FAMILY = Vocabulary(discovery_pb2.OsFamily, "OS_FAMILY_", OS_FAMILIES)
CRITICALITY = Vocabulary(discovery_pb2.BusinessCriticality, "BUSINESS_CRITICALITY_", CRITICALITIES)
DEPENDENCY_KIND = Vocabulary(discovery_pb2.DependencyKind, "DEPENDENCY_KIND_", DEPENDENCY_KINDS)
ALL = (ASSET_TYPE, ENVIRONMENT, OS_FAMILY, CRITICALITY, DEPENDENCY_KIND)
