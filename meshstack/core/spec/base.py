"""The catalog as validation context, and the shared checks the spec's models use."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationInfo

from meshstack.core.catalog import Catalog, load_catalog
from meshstack.core.validation import (
    DNS_LABEL,
    SpecModel,
    check_cidr,
    check_label,
    check_labels,
    field_error,
    parse_cidr,
)

__all__ = [
    "DNS_LABEL",
    "SpecModel",
    "catalog_from",
    "check_cidr",
    "check_label",
    "check_labels",
    "field_error",
    "parse_cidr",
]


def catalog_from(info: ValidationInfo, cloud: str = "aws") -> Catalog:
    """The catalog the caller validates against (overrides included), else the cloud's shipped one."""
    context: Any = info.context
    if isinstance(context, dict) and isinstance(context.get("catalog"), Catalog):
        return context["catalog"]
    return load_catalog(cloud=cloud)
