"""Accelerators, instance types and their prices, as data a user can extend or override."""

from components.catalog.catalog import (
    Accelerator,
    Catalog,
    CatalogError,
    InstanceType,
    PriceSource,
    load_catalog,
)

__all__ = ["Accelerator", "Catalog", "CatalogError", "InstanceType", "PriceSource", "load_catalog"]
