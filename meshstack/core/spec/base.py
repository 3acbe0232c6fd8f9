"""What the stack spec's models share: the catalog as validation context, CIDR and label checks."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from pydantic import ValidationInfo
from pydantic_core import PydanticCustomError

from meshstack.core.catalog import Catalog, load_catalog
from meshstack.core.validation import SpecModel, field_error

__all__ = ["DNS_LABEL", "SpecModel", "catalog_from", "check_cidr", "check_label", "field_error", "parse_cidr"]

DNS_LABEL = r"^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$"


def catalog_from(info: ValidationInfo) -> Catalog:
    context: Any = info.context
    if isinstance(context, dict) and isinstance(context.get("catalog"), Catalog):
        return context["catalog"]
    return load_catalog()


def parse_cidr(value: str) -> ipaddress.IPv4Network:
    """A CIDR block in canonical form; host bits set is a mistake worth stopping on."""
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise PydanticCustomError(
            "cidr",
            "'{value}' is not an IPv4 CIDR block such as 10.0.0.0/16 ({reason})",
            {"value": value, "reason": str(exc)},
        ) from exc


def check_cidr(value: str) -> str:
    parse_cidr(value)
    return value


LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def check_label(key: str, value: str) -> None:
    if not LABEL_KEY.match(key):
        raise PydanticCustomError(
            "label_key",
            "'{key}' is not a valid Kubernetes label key (prefix/name, name of at most 63 characters)",
            {"key": key},
        )
    if not LABEL_VALUE.match(value):
        raise PydanticCustomError(
            "label_value",
            "'{value}' is not a valid Kubernetes label value (at most 63 alphanumerics, '-', '_', '.')",
            {"value": value},
        )
