"""The estimate itself: each resource priced by its cloud's pricing module, with the discounts, pool sizes,
expected store sizes and training runs the stack declares."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from types import ModuleType
from typing import Any, cast

from meshstack.core import clouds
from meshstack.core.catalog import Catalog, known_clouds, load_catalog
from meshstack.core.pricing import HOURS_PER_MONTH, Fleet, PoolShape, Priced, check_services, node_hourly
from meshstack.core.resources import ResourceView
from meshstack.core.types import EXPECTED_GIB, GOVERNANCE, RUNS, TRAINING_RUNS, WORKLOAD_NODES
from meshstack.cost.report import CostItem, CostReport, Energy, RunCost, monthly_kwh


class _Pricer:
    """The cloud-independent half of pricing: discounts, pools, expected sizes, assumptions."""

    def __init__(self, resources: Sequence[ResourceView], catalog: Catalog, region: str) -> None:
        self.catalog = catalog
        self.region = region
        self.by_urn = {r.urn: r for r in resources}
        self._by_id = {str(r.props.get("id")): r for r in resources if r.props.get("id")}
        self._expected = _declared(resources, EXPECTED_GIB)
        self._busy = _declared(resources, WORKLOAD_NODES)
        self._resources = resources
        self.assumptions: set[str] = set()
        self._services: dict[type[Any], Any] = {}
        discounts = catalog.discounts
        self.instances_factor = 1 - discounts.instances / 100
        self.storage_factor = 1 - discounts.storage / 100
        self.services_factor = 1 - discounts.services / 100

    def assume(self, assumption: str) -> None:
        self.assumptions.add(assumption)

    def services(self, model: type[Any]) -> Any:
        if model not in self._services:
            self._services[model] = check_services(self.catalog, model)
        return self._services[model]

    def by_id(self, resource_id: object) -> ResourceView | None:
        return self._by_id.get(str(resource_id))

    def expected_gib(self, resource: ResourceView) -> float:
        return self._expected.get(resource.name, 0.0)

    def component(self, resource: ResourceView) -> str:
        parent = self.by_urn.get(resource.parent)
        while parent is not None and not parent.type.startswith("meshstack:"):
            parent = self.by_urn.get(parent.parent)
        return parent.name if parent is not None else resource.name

    def pool(self, r: ResourceView, shape: PoolShape, disk_hourly: float) -> Priced:
        """Nodes at the market's price (TPU hosts with their chips), plus each node's boot disk."""
        itype = self.catalog.instance_types.get(shape.instance_type)
        if itype is None:
            self.assume(f"{shape.instance_type}: not in the catalog, priced at 0")
            return Priced(f"{shape.desired_nodes} x {shape.instance_type} (unpriced)", 0.0, 0.0, 0.0, 0.0)
        tpu = self.catalog.tpus.get(itype.accelerator)
        hourly, assumptions = node_hourly(self.catalog, shape.instance_type, shape.market, self.region)
        for assumption in assumptions:
            self.assume(assumption)
        hourly += disk_hourly
        chips = f", {itype.accelerators} {itype.accelerator} chips each" if tpu is not None else ""
        idle, peak = shape.idle_nodes, shape.peak_nodes
        running = self._running_nodes(r, shape)
        watts = self.catalog.node_watts(shape.instance_type)
        if self.catalog.accelerators[itype.accelerator].board_watts_estimated:
            self.assume(f"{itype.accelerator}: board power is an estimate (its vendor publishes none)")
        description = (
            f"{shape.desired_nodes} x {shape.instance_type} ({shape.market}{chips}), "
            f"{running} with its workloads running, up to {peak}"
        )
        # A capacity block is bought up front for all its instances: paid at every level, idle included.
        # Its nodes draw power only while they run, so the energy stays at the nodes that do.
        paid = (
            (peak, peak, peak, peak) if shape.market == "capacity-block" else (shape.desired_nodes, peak, idle, running)
        )
        if shape.market == "capacity-block":
            description += f"; the block's {peak} prepaid, used or not"
        if shape.fallback:
            prices = [
                f"{m} at ${node_hourly(self.catalog, shape.instance_type, m, self.region)[0] + disk_hourly:,.2f}"
                for m in shape.fallback
            ]
            description += (
                f"; priced as it runs first (${hourly:,.2f}/node-hour), falls back to {', then '.join(prices)}"
            )
        return Priced(
            description,
            paid[0] * hourly,
            paid[1] * hourly,
            paid[2] * hourly,
            paid[3] * hourly,
            shape.desired_nodes * watts,
            idle * watts,
            running * watts,
        )

    def fleet(self) -> Fleet:
        """Nodes over every pool of the stack's cloud, at each level: what per-VM charges count."""
        declared = peak = idle = running = 0
        for r in self._resources:
            if r.type not in pool_types() or not clouds.get(self.catalog.cloud).owns(r.type):
                continue
            shape = pool_shape(r)
            declared += shape.desired_nodes
            peak += shape.peak_nodes
            idle += shape.idle_nodes
            running += self._running_nodes(r, shape)
        return Fleet(declared, peak, idle, running)

    def _running_nodes(self, r: ResourceView, shape: PoolShape) -> int:
        """The nodes the stack's workloads need, never under the min size nor over the max; a pool
        meshstack did not size (a plain resource) runs at its desired size."""
        busy = self._busy.get(r.name)
        if busy is None:
            return shape.desired_nodes
        return min(shape.peak_nodes, max(shape.idle_nodes, int(busy)))


def _declared(resources: Sequence[ResourceView], key: str) -> dict[str, float]:
    """What meshstack's components declare about their children, by child name: the expected size of
    stores the cloud does not size (buckets, EFS), the nodes the workloads keep busy in each pool."""
    values: dict[str, float] = {}
    for r in resources:
        declared = r.props.get(key) if r.type.startswith("meshstack:") else None
        if isinstance(declared, Mapping):
            values.update({str(k): float(v) for k, v in declared.items()})
    return values


@functools.cache
def pricing_module(cloud: str) -> ModuleType:
    """The registered cloud's pricing module: the one place that knows what its resources cost."""
    module: ModuleType = clouds.get(cloud).load_pricing()
    return module


@functools.cache
def pool_types() -> tuple[str, ...]:
    """Every cloud's node-pool resource types."""
    return tuple(t for cloud in known_clouds() for t in pricing_module(cloud).POOL_TYPES)


def pool_shape(resource: ResourceView) -> PoolShape:
    """What a node pool holds, read by the pricing module of the cloud that owns its type."""
    for cloud in known_clouds():
        module = pricing_module(cloud)
        if resource.type in module.POOL_TYPES:
            return cast(PoolShape, module.pool_shape(resource))
    raise ValueError(f"{resource.type} is not a node pool type of any cloud")


def estimate(resources: Iterable[ResourceView], catalog: Catalog | None = None) -> CostReport:
    catalog = catalog or load_catalog()
    resources = list(resources)
    region = _stack_region(resources) or catalog.prices.region
    pricer = _Pricer(resources, catalog, region)
    price = pricing_module(catalog.cloud).price
    items = []
    for r in resources:
        # A cloud's pools include what launches its nodes from inside the cluster (Karpenter's NodePools).
        owned = clouds.get(catalog.cloud).owns(r.type) or r.type in pricing_module(catalog.cloud).POOL_TYPES
        priced = price(r, pricer) if owned else None
        if priced is not None:
            items.append(
                # A CostItem is a Priced resource with where it sits: the same fields, by name.
                CostItem(r.urn, r.type, r.name, pricer.component(r), **dataclasses.asdict(priced))
            )
    items.sort(key=lambda i: (-i.hourly_usd, i.urn))
    runs, max_run_usd = _training_runs(resources, catalog, region)
    if runs:
        pricer.assume(
            "a month of running counts serving and idle nodes every hour and each training run once, its extra "
            "nodes for its estimated hours; a run's own cost is per run"
        )
    intensity = catalog.grid_intensity(region)
    if intensity is None:
        pricer.assume(f"no grid carbon intensity for {region} in the catalog: CO2 is not estimated")
    pricer.assume(
        f"energy: accelerators at {catalog.energy.accelerator_load:.0%} of board power, hosts from per-vCPU and "
        f"per-GiB coefficients, PUE {catalog.energy.pue}; storage and network not counted"
    )
    energy = Energy(
        monthly_kwh(sum(i.idle_watts for i in items)),
        monthly_kwh(sum(i.watts for i in items)),
        monthly_kwh(sum(i.running_watts for i in items)) - sum(r.idle_monthly_kwh for r in runs),
        region,
        intensity,
        catalog.energy.source,
    )
    return CostReport(
        items=items,
        price_date=catalog.prices.date,
        price_source=_price_source(catalog, region),
        region=region,
        price_basis=_price_basis(catalog, region),
        energy=energy,
        assumptions=sorted(pricer.assumptions),
        runs=runs,
        max_run_usd=max_run_usd,
    )


def _training_runs(
    resources: Sequence[ResourceView], catalog: Catalog, region: str
) -> tuple[list[RunCost], float | None]:
    """The runs the program declared, each with what its extra nodes would cost for the month's other hours."""
    declared = next((r.props for r in resources if r.type == TRAINING_RUNS), {})
    runs = []
    for run in declared.get(RUNS) or []:
        if not isinstance(run, Mapping) or str(run.get("instance_type")) not in catalog.instance_types:
            continue
        instance_type, nodes = str(run["instance_type"]), int(run.get("nodes") or 0)
        hours = max(float(run.get("hours") or 0), 0.0)
        rest = HOURS_PER_MONTH - min(hours, HOURS_PER_MONTH)
        prepaid = bool(run.get("prepaid"))  # a capacity block: paid every hour, drawing power only while it runs
        hourly = 0.0 if prepaid else node_hourly(catalog, instance_type, str(run.get("market", "on-demand")), region)[0]
        runs.append(
            RunCost(
                str(run.get("workload")),
                nodes,
                hours,
                float(run.get("cost_usd") or 0),
                nodes * hourly * rest,
                monthly_kwh(nodes * catalog.node_watts(instance_type)) * rest / HOURS_PER_MONTH,
            )
        )
    cap = declared.get("max_run_usd")
    return runs, None if cap is None else float(cap)


def _price_basis(catalog: Catalog, region: str) -> str:
    base = catalog.prices.region
    if region == base or region in catalog.regional_prices:
        return f"{region} prices"
    return f"{base} list prices: the catalog has no {region} prices"


def _price_source(catalog: Catalog, region: str) -> str:
    regional = catalog.regional_prices.get(region)
    if regional is None:
        return catalog.prices.source
    if region == catalog.prices.region:
        return f"{catalog.prices.source}; spot: {regional.source}"
    return f"{regional.source}; services at {catalog.prices.region} rates ({catalog.prices.source})"


def _stack_region(resources: Sequence[ResourceView]) -> str | None:
    """The region the stack runs in, as its governance resource declares it."""
    region = next((r.props.get("region") for r in resources if r.type == GOVERNANCE), None)
    return str(region) if region else None


# The estimate `meshstack preview` made of a plan, handed to the budget rule that judges the same plan.
_HANDED: ContextVar[CostReport | None] = ContextVar("meshstack_cost_estimate", default=None)


@contextmanager
def handed_over(report: CostReport) -> Iterator[None]:
    """While the policy pack judges the plan this report priced, its budget rule uses the report."""
    token = _HANDED.set(report)
    try:
        yield
    finally:
        _HANDED.reset(token)


def plan_estimate(resources: Iterable[ResourceView], catalog: Catalog) -> CostReport:
    """The preview's own estimate of this plan when it handed one over; under `pulumi preview`, a fresh one."""
    handed = _HANDED.get()
    return handed if handed is not None else estimate(resources, catalog)
