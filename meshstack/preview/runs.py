"""What each declared training run takes end to end: its tokens through the shared speed model
(meshstack.core.sizing) on the devices it is given, and so its wall time, cost, energy and CO2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meshstack.core import sizing
from meshstack.core.capacity import demand
from meshstack.core.catalog import Catalog
from meshstack.core.pricing import node_hourly
from meshstack.core.spec import StackSpec, TrainingWorkload


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

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "tokens": self.tokens,
            "params": self.params,
            "devices": self.devices,
            "accelerator": self.accelerator,
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
            f"${self.cost_usd:,.0f}, {self.kwh:,.0f} kWh{co2}"
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
            )
        )
    return runs
