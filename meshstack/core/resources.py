"""A resource as policies and the cost estimate see it, whoever recorded it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ResourceView:
    """Identity, parent and properties: what the policy engine hands a stack policy. `dependencies` are the
    URNs it depends on, which tie a sub-resource to its parent where the id that names it is still unknown."""

    urn: str
    type: str
    name: str
    parent: str
    props: Mapping[str, Any]
    dependencies: tuple[str, ...] = ()
