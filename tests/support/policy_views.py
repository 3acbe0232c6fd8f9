"""Resources as the policy rules see them, made by hand: the rule tests and the architecture test build
their stacks from these."""

from __future__ import annotations

from typing import Any

from meshstack.core.resources import ResourceView
from meshstack.core.types import GOVERNANCE

URN = "urn:pulumi:test::meshstack::{}::{}"


def view(typ: str, props: dict[str, Any], name: str = "r") -> ResourceView:
    return ResourceView(URN.format(typ, name), typ, name, "", props)


def governed(environment: str, **budget: Any) -> list[ResourceView]:
    return [view(GOVERNANCE, {"environment": environment, **budget}, "budget")]


def group(
    name: str, itype: str, max_size: int, capacity: str = "ON_DEMAND", min_size: int = 0, desired: int = 0
) -> ResourceView:
    return view(
        "aws:eks/nodeGroup:NodeGroup",
        {
            "instanceTypes": [itype],
            "capacityType": capacity,
            "scalingConfig": {"minSize": min_size, "maxSize": max_size, "desiredSize": desired},
        },
        name,
    )
