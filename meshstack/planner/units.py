"""What a node count multiplies, as a cloud's catalog offers it in a region (an instance type, or a TPU
slice), and an option priced and given its energy from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meshstack.core.catalog import Catalog, InstanceType
from meshstack.core.pricing import node_hourly
from meshstack.planner.options import Option, PlanRequest, Rejected


@dataclass(frozen=True)
class Unit:
    """What a node count multiplies: an instance type, or a TPU slice (hosts of one machine type)."""

    catalog: Catalog
    accelerator: str
    instance_type: str
    devices: int  # per node, or per slice
    hosts: int = 1  # nodes per unit
    topology: str | None = None

    @property
    def itype(self) -> InstanceType:
        return self.catalog.instance_types[self.instance_type]

    def label(self) -> str:
        shape = f"{self.topology} {self.accelerator} slice" if self.topology else self.instance_type
        return f"{self.catalog.cloud}: {shape}"


def region_of(catalog: Catalog, request: PlanRequest) -> str:
    return request.region or catalog.prices.region


def available_units(catalog: Catalog, single_host: bool, region: str, rejected: list[Rejected]) -> list[Unit]:
    """What can be had in the region: a type the catalog lists in other regions only is left out, and one
    without a price in the catalog is rejected, saying so."""
    units = []
    for name, itype in sorted(catalog.instance_types.items()):
        if catalog.zones(name, region) == []:
            continue
        if itype.accelerators and not catalog.is_tpu(itype.accelerator):
            if itype.price_per_hour is None:
                rejected.append(Rejected(f"{catalog.cloud}: {name}", "no price in the catalog (an override gives one)"))
                continue
            units.append(Unit(catalog, itype.accelerator, name, itype.accelerators))
    for generation, tpu in sorted(catalog.tpus.items()):
        if tpu.zones is not None and not tpu.zones.get(region):
            continue
        for topology, shape in tpu.topologies.items():
            if single_host and shape.hosts > 1:
                continue
            units.append(Unit(catalog, generation, shape.machine_type, shape.chips, shape.hosts, topology))
    return units


def _node_hourly(unit: Unit, region: str) -> tuple[float, float | None, float | None]:
    """On-demand, spot (where the capacity is offered so) and capacity-block (where priced) prices of one node."""
    catalog, itype = unit.catalog, unit.itype
    tpu = catalog.tpus.get(unit.accelerator)
    spot_allowed = itype.spot and (tpu is None or tpu.spot)
    hourly = node_hourly(catalog, unit.instance_type, "on-demand", region)[0]
    spot = node_hourly(catalog, unit.instance_type, "spot", region)[0] if spot_allowed else None
    block = (
        node_hourly(catalog, unit.instance_type, "capacity-block", region)[0]
        if itype.capacity_block_price_per_hour
        else None
    )
    return hourly, spot, block


def priced_option(
    request: PlanRequest, unit: Unit, count: int, layout: dict[str, Any], per_device: float, hours: float
) -> Option:
    catalog = unit.catalog
    region = region_of(catalog, request)
    nodes = count * unit.hosts
    hourly, spot, block = _node_hourly(unit, region)
    kwh = catalog.run_kwh(unit.instance_type, nodes, hours)
    return Option(
        catalog.cloud,
        region,
        unit.accelerator,
        unit.instance_type,
        nodes,
        count * unit.devices,
        layout,
        per_device,
        catalog.accelerators[unit.accelerator].memory_gib,
        hours,
        hourly * nodes,
        None if spot is None else spot * nodes,
        None if block is None else block * nodes,
        kwh,
        catalog.kg_co2e(kwh, region),
        unit.topology,
        count if unit.topology else 1,
        request.market,
    )
