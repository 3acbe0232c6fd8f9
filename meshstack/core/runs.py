"""What each declared training run takes end to end: its tokens through the shared speed model
(meshstack.core.sizing) on the devices it is given, and so its wall time, cost, energy and CO2.

A run's cost is per run, not per month: validation holds it to the budget's max_run_usd, the preview
reports it, and the program declares each run's nodes and hours so the cost estimate counts a training
pool's extra nodes for the run's hours, not for every hour of the month.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshstack.core import sizing
from meshstack.core.capacity import Demand, demand, running_nodes
from meshstack.core.catalog import Catalog
from meshstack.core.pricing import node_hourly
from meshstack.core.spec.workload import TrainingWorkload

if TYPE_CHECKING:
    from meshstack.core.spec.stack import StackSpec


@dataclass(frozen=True)
class TrainingRun:
    workload: str
    tokens: float
    params: float
    devices: int
    accelerator: str
    nodes: int
    hours: float
    cost_usd: float
    kwh: float
    kg_co2e: float | None
    instance_type: str = ""
    market: str = "on-demand"

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "tokens": self.tokens,
            "params": self.params,
            "devices": self.devices,
            "accelerator": self.accelerator,
            "instance_type": self.instance_type,
            "market": self.market,
            "nodes": self.nodes,
            "mfu": sizing.PLANNING_MFU,
            "hours": round(self.hours, 2),
            "cost_usd": round(self.cost_usd, 2),
            "kwh": round(self.kwh, 1),
            "kg_co2e": None if self.kg_co2e is None else round(self.kg_co2e, 1),
        }

    def describe(self) -> str:
        co2 = f" ({self.kg_co2e:,.0f} kgCO2e)" if self.kg_co2e is not None else ""
        days = f"{self.hours / 24:.1f} days" if self.hours >= 48 else f"{self.hours:.1f} hours"
        return (
            f"{self.workload}: {self.tokens / 1e9:,.1f}B tokens, {self.params / 1e9:.2f}B parameters on "
            f"{self.devices} {self.accelerator} ({self.nodes} nodes): about {days} at {sizing.PLANNING_MFU:.0%} MFU, "
            f"${self.cost_usd:,.0f} and {self.kwh:,.0f} kWh{co2} per run"
        )


def training_runs(spec: StackSpec, catalog: Catalog) -> list[TrainingRun]:
    """Training workloads on accelerator pools; a CPU pool has no peak to time it against."""
    runs = []
    for workload in spec.workloads:
        if not isinstance(workload, TrainingWorkload):
            continue
        pool = spec.pool_of(workload)
        need = demand(workload, pool, catalog)
        accelerator = catalog.accelerators[pool.accelerator]
        precision = "fp32" if workload.train.compute_dtype == "float32" and accelerator.fp32_tflops else "bf16"
        peak = accelerator.peak_tflops(precision)
        if not need.accelerators or not peak:
            continue
        cfg, train = workload.model, workload.train
        model = sizing.of_model(cfg)
        tokens = float(train.steps * train.global_batch * train.seq_len)
        hours = sizing.training_seconds(model, tokens, need.accelerators, peak, sizing.PLANNING_MFU, False) / 3600
        hourly = node_hourly(catalog, str(pool.instance_type), pool.market, spec.region)[0]
        kwh = catalog.run_kwh(str(pool.instance_type), need.nodes, hours)
        runs.append(
            TrainingRun(
                workload.name,
                tokens,
                model.params,
                need.accelerators,
                pool.accelerator,
                need.nodes,
                hours,
                hourly * need.nodes * hours,
                kwh,
                catalog.kg_co2e(kwh, spec.region),
                str(pool.instance_type),
                pool.market,
            )
        )
    return runs


def run_declarations(spec: StackSpec, catalog: Catalog) -> list[dict[str, Any]]:
    """Per training run: the nodes it adds to its pool beyond what the pool keeps busy all month (serving
    replicas, min_nodes), and its hours. The cost estimate counts those nodes for the run's hours only.
    A capacity block is paid whole for every hour (`prepaid`): its run's nodes come off the month's energy,
    not its cost. A run on an existing cluster adds no node to the estimate (it prices none of that
    cluster's nodes); its own cost per run stands."""
    runs = {r.workload: r for r in training_runs(spec, catalog)}
    declared = []
    for cluster in spec.clusters:
        for pool in cluster.node_pools:
            demands: list[Demand] = []
            training: list[tuple[TrainingWorkload, Demand]] = []
            for workload in spec.workloads:
                if workload.cluster != cluster.name or workload.node_pool != pool.name:
                    continue
                need = demand(workload, pool, catalog)
                demands.append(need)
                if isinstance(workload, TrainingWorkload) and workload.name in runs:
                    training.append((workload, need))
            if not training:
                continue
            steady = [d for d in demands if d.workload not in {w.name for w, _ in training}]
            extra = (running_nodes(pool, demands) - running_nodes(pool, steady)) * pool.slices
            if cluster.existing is not None:
                extra = 0  # an existing cluster's nodes are its owners': the estimate prices none of them
            for workload, need in training:
                nodes = min(need.nodes, extra)
                extra -= nodes
                run = runs[workload.name]
                declared.append(
                    {
                        "workload": workload.name,
                        "instance_type": str(pool.instance_type),
                        "market": pool.market,
                        "nodes": nodes,
                        "hours": run.hours,
                        "cost_usd": run.cost_usd,
                        "prepaid": pool.market == "capacity-block",
                    }
                )
    return declared
