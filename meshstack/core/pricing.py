"""The contract between the cost estimate and each cloud's pricing module.

A cloud's pricing module (components/<cloud>/pricing.py) knows its own resource types: which
cost money, at which catalog price, and how its node pools say what they hold. The estimate
itself is the same for every cloud and hands each module a `PricingContext`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from meshstack.core.catalog import Catalog, CatalogError
from meshstack.core.resources import ResourceView

HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class Priced:
    """What one resource costs per hour: as declared (a pool at its desired size), idle (a pool at its
    min size), while the stack's workloads run (a pool at the nodes they need), and at its max size."""

    description: str
    hourly_usd: float
    peak_hourly_usd: float
    idle_hourly_usd: float
    running_hourly_usd: float
    # What its nodes draw at the wall, at the same levels; 0 for what has no nodes.
    watts: float = 0.0
    idle_watts: float = 0.0
    running_watts: float = 0.0

    @classmethod
    def flat(cls, description: str, hourly_usd: float) -> Priced:
        return cls(description, hourly_usd, hourly_usd, hourly_usd, hourly_usd)


@dataclass(frozen=True)
class PoolShape:
    """Node counts are totals over the pool's zones; None where the resource does not say."""

    instance_type: str
    min_nodes: int | None
    desired_nodes: int
    max_nodes: int | None
    market: str


class PricingContext(Protocol):
    """What the estimate offers a cloud's pricing module."""

    catalog: Catalog
    services_factor: float
    storage_factor: float

    def assume(self, assumption: str) -> None: ...

    def services(self, model: type[Any]) -> Any:
        """The catalog's service prices as the cloud's `model`, checked once per estimate."""

    def by_id(self, resource_id: object) -> ResourceView | None: ...

    def expected_gib(self, resource: ResourceView) -> float: ...

    def pool(self, resource: ResourceView, shape: PoolShape, disk_hourly: float) -> Priced: ...


def node_hourly(catalog: Catalog, instance_type: str, market: str) -> tuple[float, list[str]]:
    """One node's price per hour on a market (a TPU host with its chips), after the organisation's
    instance discount, and the assumptions the figure rests on. The cost estimate, the planner and
    the training-run estimate all price nodes here."""
    itype = catalog.instance_types[instance_type]
    market = market.replace("-", " ")
    hourly = itype.price_per_hour
    tpu = catalog.tpus.get(itype.accelerator)
    if tpu is not None:
        hourly += itype.accelerators * tpu.price_per_chip_hour
    assumptions = []
    if market == "spot":
        hourly *= 1 - catalog.markets.spot_discount
        assumptions.append(
            f"spot: on-demand less {catalog.markets.spot_discount:.0%}, a typical discount; it moves hourly"
        )
    elif market == "capacity block":
        if itype.capacity_block_price_per_hour is not None:
            hourly = itype.capacity_block_price_per_hour
        else:
            assumptions.append(f"{instance_type} capacity block: priced at on-demand (no block price in catalog)")
        assumptions.append("capacity blocks are paid up front for the whole block, used or not")
    elif market == "reservation":
        assumptions.append("reservations are billed at the on-demand rate, used or not")
    return hourly * (1 - catalog.discounts.instances / 100), assumptions


def mapping(props: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = props.get(key)
    return value if isinstance(value, Mapping) else {}


def check_services(catalog: Catalog, model: type[Any]) -> Any:
    """The catalog's service prices, checked against the cloud's own model of them."""
    try:
        return model.model_validate(catalog.services)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CatalogError(f"catalog services.{where}: {first['msg']}") from exc
