"""The strict base model and field-pointing errors every spec model uses, JAX config models included.

A leaf module: the JAX programs import it without loading the stack spec or Pulumi.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError


class SpecModel(BaseModel):
    """Strict and closed: a typo in a stack file is an error, never a silently ignored key."""

    model_config = ConfigDict(strict=True, extra="forbid", validate_default=True)


def field_error(field: str, message: str) -> PydanticCustomError:
    """An error for a cross-field rule, reported at `field` below the model that raised it.

    pydantic reports a model validator's errors at the model itself; carrying the
    field in the context lets the error formatter name the exact key to change.
    """
    return PydanticCustomError("meshstack", message, {"field": field})


def check_unique(items: Iterable[tuple[str, str]], what: str) -> None:
    """Raise at the first (path, name) whose name came before: names are how the stack refers to things."""
    seen: set[str] = set()
    for path, name in items:
        if name in seen:
            raise field_error(path, f"{what} name '{name}' is used twice")
        seen.add(name)


DNS_LABEL = r"^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$"


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


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    """Every key and value of a label map, as a field validator returns it."""
    for key, value in labels.items():
        check_label(key, value)
    return labels
