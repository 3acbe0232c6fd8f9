"""The contract between the cost estimate and each cloud's pricing module.

A cloud's pricing module (components/<cloud>/pricing.py) knows its own resource types: which
cost money, at which catalog price, and how its node pools say what they hold. The estimate
itself is the same for every cloud and hands each module a `PricingContext`.
"""

from __future__ import annotations

import math
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
    fallback: tuple[str, ...] = ()  # markets it takes nodes from, in order, when `market` has no capacity

    @property
    def peak_nodes(self) -> int:
        return self.max_nodes if self.max_nodes is not None else self.desired_nodes

    @property
    def idle_nodes(self) -> int:
        return self.min_nodes if self.min_nodes is not None else self.desired_nodes


@dataclass(frozen=True)
class Fleet:
    """The stack's nodes over all its pools: as declared, at max size, idle and while the workloads run."""

    declared: int
    peak: int
    idle: int
    running: int


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

    def fleet(self) -> Fleet: ...


def list_price(catalog: Catalog, instance_type: str, region: str | None = None) -> tuple[float, list[str]]:
    """One node's on-demand price (a TPU host with its chips) in `region` (the catalog's base region when
    None), and what the figure rests on: a type the catalog has no price for in that region is priced at
    the base region's rate, one with no price at all at 0, and either says so."""
    itype = catalog.instance_types[instance_type]
    tpu = catalog.tpus.get(itype.accelerator)
    base = catalog.prices.region
    region = region or base
    regional = catalog.regional_prices.get(region) if region != base else None
    own_price = regional.instance_types.get(instance_type) if regional is not None else None
    chip_price = regional.tpu_chip_hour.get(itype.accelerator) if regional is not None and tpu is not None else None
    assumptions = []
    if own_price is not None:
        hourly = own_price
    elif itype.price_per_hour is not None:
        hourly = itype.price_per_hour
    else:
        hourly = 0.0
        assumptions.append(f"{instance_type}: the catalog records no price; priced at 0 (set one in an override)")
    if tpu is not None:
        hourly += itype.accelerators * (tpu.price_per_chip_hour if chip_price is None else chip_price)
    priced_here = own_price is not None if tpu is None else chip_price is not None
    if region != base and not priced_here and itype.price_per_hour is not None:
        what = itype.accelerator if tpu is not None else instance_type
        assumptions.append(f"{what}: the catalog has no {region} price; priced at {base}'s list price")
    note = regional.notes.get(instance_type) if regional is not None else None
    if note:
        assumptions.append(f"{instance_type} in {region}: {note}")
    return hourly, assumptions


def spot_price(catalog: Catalog, instance_type: str, region: str) -> float | None:
    """The snapshot's spot price of one node in `region` (a TPU host's chips at their spot rate), if recorded."""
    regional = catalog.regional_prices.get(region)
    if regional is None:
        return None
    itype = catalog.instance_types[instance_type]
    if itype.accelerator in catalog.tpus:
        chip = regional.tpu_spot_chip_hour.get(itype.accelerator)
        return None if chip is None else itype.accelerators * chip
    return regional.spot.get(instance_type)


def node_hourly(
    catalog: Catalog, instance_type: str, market: str, region: str | None = None
) -> tuple[float, list[str]]:
    """One node's price per hour on a market in a region, after the organisation's instance discount,
    and the assumptions the figure rests on. The cost estimate, the planner and the training-run
    estimate all price nodes here."""
    itype = catalog.instance_types[instance_type]
    region = region or catalog.prices.region
    hourly, assumptions = list_price(catalog, instance_type, region)
    if market == "spot":
        spot = spot_price(catalog, instance_type, region)
        if spot is not None:
            hourly = min(spot, hourly)
            assumptions.append(
                f"{instance_type} spot in {region}: the price snapshot's median over the region's zones; "
                "it moves hourly"
            )
        else:
            discount = catalog.spot_discount(instance_type)
            hourly *= 1 - discount
            assumptions.append(
                f"{instance_type} spot: on-demand less {discount:.0%}, a typical discount; it moves hourly"
            )
    elif market == "capacity-block":
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


def quantity(value: Any, default: float = 0.0) -> float:
    """A size or count as a finite float: a number or numeric string; default for anything else (a list,
    null, a bool, a value the engine does not know yet). The policy pack prices any plan it is given."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return default
    try:
        result = float(value)
    except (ValueError, OverflowError):
        return default
    return result if math.isfinite(result) else default


def count(value: Any) -> int | None:
    """A whole count (node counts), None where there is none."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    result = quantity(value, math.nan)
    return None if math.isnan(result) else int(result)


def check_services(catalog: Catalog, model: type[Any]) -> Any:
    """The catalog's service prices, checked against the cloud's own model of them."""
    try:
        return model.model_validate(catalog.services)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CatalogError(f"catalog services.{where}: {first['msg']}") from exc
