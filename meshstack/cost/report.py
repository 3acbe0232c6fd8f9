"""What an estimate reports: each priced resource, the stack's energy, its training runs, and the totals
the pull-request comment and the budget rules read."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from meshstack.core.pricing import HOURS_PER_MONTH


@dataclass(frozen=True)
class CostItem:
    urn: str
    type: str
    name: str
    component: str
    description: str
    hourly_usd: float
    peak_hourly_usd: float
    idle_hourly_usd: float
    running_hourly_usd: float
    watts: float = 0.0
    idle_watts: float = 0.0
    running_watts: float = 0.0

    @property
    def monthly_usd(self) -> float:
        return self.hourly_usd * HOURS_PER_MONTH

    def to_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "component": self.component,
            "description": self.description,
            "idle_hourly_usd": round(self.idle_hourly_usd, 4),
            "hourly_usd": round(self.hourly_usd, 4),
            "running_hourly_usd": round(self.running_hourly_usd, 4),
            "monthly_usd": round(self.monthly_usd, 2),
            "peak_hourly_usd": round(self.peak_hourly_usd, 4),
            "idle_monthly_kwh": round(monthly_kwh(self.idle_watts), 1),
            "monthly_kwh": round(monthly_kwh(self.watts), 1),
            "running_monthly_kwh": round(monthly_kwh(self.running_watts), 1),
        }


def monthly_kwh(watts: float) -> float:
    return watts * HOURS_PER_MONTH / 1000


@dataclass(frozen=True)
class Energy:
    """kWh per month at the wall and its kgCO2e at the region's grid intensity, at the three levels."""

    idle_monthly_kwh: float
    monthly_kwh: float
    running_monthly_kwh: float
    region: str
    grid_gco2e_per_kwh: float | None
    source: str

    def kg_co2e(self, kwh: float) -> float | None:
        return None if self.grid_gco2e_per_kwh is None else kwh * self.grid_gco2e_per_kwh / 1000

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"region": self.region, "grid_gco2e_per_kwh": self.grid_gco2e_per_kwh}
        for level in ("idle_", "", "running_"):
            kwh = getattr(self, f"{level}monthly_kwh")
            co2 = self.kg_co2e(kwh)
            out[f"{level}monthly_kwh"] = round(kwh, 1)
            out[f"{level}monthly_kg_co2e"] = None if co2 is None else round(co2, 1)
        out["source"] = self.source
        return out


@dataclass(frozen=True)
class RunCost:
    """A training run as the estimate counts it: its extra nodes for its hours, once a month (at most all month)."""

    workload: str
    nodes: int
    hours: float
    cost_usd: float
    idle_monthly_usd: float  # what its nodes would cost for the rest of the month, which they do not run
    idle_monthly_kwh: float

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "nodes": self.nodes,
            "hours": round(self.hours, 2),
            "cost_usd": round(self.cost_usd, 2),
        }


@dataclass(frozen=True)
class CostReport:
    items: list[CostItem]
    price_date: str
    price_source: str
    region: str
    energy: Energy
    assumptions: list[str] = field(default_factory=list)
    price_basis: str = ""  # whose list prices: the region's own, or the base region's where it has none
    runs: list[RunCost] = field(default_factory=list)
    max_run_usd: float | None = None

    @property
    def hourly_usd(self) -> float:
        return sum(i.hourly_usd for i in self.items)

    @property
    def monthly_usd(self) -> float:
        return self.hourly_usd * HOURS_PER_MONTH

    @property
    def peak_hourly_usd(self) -> float:
        """Every node group at its max size: what the autoscaler may reach."""
        return sum(i.peak_hourly_usd for i in self.items)

    @property
    def idle_hourly_usd(self) -> float:
        """Every node group at its min size: what the stack costs with nothing running."""
        return sum(i.idle_hourly_usd for i in self.items)

    @property
    def running_hourly_usd(self) -> float:
        """Every node group at the nodes the stack's own workloads need: what running them costs."""
        return sum(i.running_hourly_usd for i in self.items)

    @property
    def idle_monthly_usd(self) -> float:
        return self.idle_hourly_usd * HOURS_PER_MONTH

    @property
    def running_monthly_usd(self) -> float:
        """A month of the stack's workloads: serving and idle nodes all month, each training run once (its
        extra nodes for its hours, at most the month's), not every hour of a job that finishes in two."""
        return self.running_hourly_usd * HOURS_PER_MONTH - sum(r.idle_monthly_usd for r in self.runs)

    @property
    def peak_monthly_usd(self) -> float:
        return self.peak_hourly_usd * HOURS_PER_MONTH

    def by_component(self) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for item in self.items:
            totals[item.component] += item.hourly_usd
        return dict(sorted(totals.items()))

    def to_json(self) -> dict[str, Any]:
        return {
            "idle_hourly_usd": round(self.idle_hourly_usd, 4),
            "idle_monthly_usd": round(self.idle_monthly_usd, 2),
            "hourly_usd": round(self.hourly_usd, 4),
            "monthly_usd": round(self.monthly_usd, 2),
            "running_hourly_usd": round(self.running_hourly_usd, 4),
            "running_monthly_usd": round(self.running_monthly_usd, 2),
            "peak_hourly_usd": round(self.peak_hourly_usd, 4),
            "peak_monthly_usd": round(self.peak_monthly_usd, 2),
            "training_runs": [r.to_json() for r in self.runs],
            "max_run_usd": self.max_run_usd,
            "currency": "USD",
            "price_date": self.price_date,
            "price_source": self.price_source,
            "region": self.region,
            "price_basis": self.price_basis,
            "assumptions": self.assumptions,
            "by_component": {k: round(v, 4) for k, v in self.by_component().items()},
            "energy": self.energy.to_json(),
            "items": [i.to_json() for i in self.items],
        }
