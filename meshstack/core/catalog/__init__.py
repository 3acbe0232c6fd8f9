"""Accelerators, instance types and their prices, as data a user can extend or override."""

from meshstack.core.catalog.catalog import (
    Accelerator,
    AwsServices,
    Catalog,
    CatalogError,
    Cloud,
    GcpServices,
    InstanceType,
    PriceSource,
    TpuGeneration,
    TpuTopology,
    load_catalog,
)

__all__ = [
    "Accelerator",
    "AwsServices",
    "Catalog",
    "CatalogError",
    "Cloud",
    "GcpServices",
    "InstanceType",
    "PriceSource",
    "TpuGeneration",
    "TpuTopology",
    "load_catalog",
]
