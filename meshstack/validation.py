"""The strict base model and field-pointing errors every spec model uses, JAX config models included.

A leaf module: the JAX programs import it without loading the stack spec or Pulumi.
"""

from __future__ import annotations

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
