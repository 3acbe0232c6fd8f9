"""Accelerators, instance types and their prices, as data a user can extend or override."""

from meshstack.core.catalog.catalog import (
    Accelerator,
    Catalog,
    CatalogError,
    CloudFacts,
    InstanceType,
    PriceSource,
    RegionalPrices,
    TpuGeneration,
    TpuTopology,
    known_clouds,
    load_catalog,
)

__all__ = [
    "Accelerator",
    "Catalog",
    "CatalogError",
    "CloudFacts",
    "InstanceType",
    "PriceSource",
    "RegionalPrices",
    "TpuGeneration",
    "TpuTopology",
    "known_clouds",
    "load_catalog",
]
