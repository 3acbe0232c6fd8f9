"""The strict base model and field-pointing errors every spec model uses, JAX config models included.

A leaf module: the JAX programs import it without loading the stack spec or Pulumi.
"""

from __future__ import annotations

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
