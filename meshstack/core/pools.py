"""How an EKS node group and a GKE node pool say what they hold, read the same way for cost and for policy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshstack.core.resources import ResourceView

EKS_NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
GKE_NODE_POOL = "gcp:container/nodePool:NodePool"
POOL_TYPES = (EKS_NODE_GROUP, GKE_NODE_POOL)
EKS_MARKETS = {"ON_DEMAND": "on-demand", "SPOT": "spot", "CAPACITY_BLOCK": "capacity block"}


@dataclass(frozen=True)
class PoolShape:
    """Node counts are totals over the pool's zones; None where the resource does not say."""

    instance_type: str
    min_nodes: int | None
    desired_nodes: int
    max_nodes: int | None
    market: str


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _mapping(props: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = props.get(key)
    return value if isinstance(value, Mapping) else {}


def pool_shape(pool: ResourceView) -> PoolShape:
    props = pool.props
    if pool.type == GKE_NODE_POOL:
        config, scaling = _mapping(props, "nodeConfig"), _mapping(props, "autoscaling")
        locations = props.get("nodeLocations")
        zones = max(len(locations), 1) if isinstance(locations, Sequence) else 1
        per_zone = int(props.get("initialNodeCount", props.get("nodeCount", 0)) or 0)
        # Without autoscaling a GKE pool stays at its node count.
        maximum, minimum = int(scaling.get("maxNodeCount", per_zone)), int(scaling.get("minNodeCount", per_zone))
        if config.get("spot") is True:
            market = "spot"
        elif config.get("reservationAffinity"):
            market = "reservation"
        else:
            market = "on-demand"
        return PoolShape(
            str(config.get("machineType", "?")), minimum * zones, per_zone * zones, maximum * zones, market
        )
    scaling = _mapping(props, "scalingConfig")
    types = props.get("instanceTypes")
    capacity = str(props.get("capacityType") or "ON_DEMAND")
    return PoolShape(
        str(types[0]) if isinstance(types, Sequence) and not isinstance(types, str) and types else "?",
        _int(scaling.get("minSize")),
        int(scaling.get("desiredSize", 0) or 0),
        _int(scaling.get("maxSize")),
        EKS_MARKETS.get(capacity, capacity.lower()),
    )
