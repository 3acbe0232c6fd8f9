"""What a plan is made of: the request it answers, each option that meets it (priced on the request's
market) and each that was rejected, with the reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from meshstack.core import sizing
from meshstack.core.catalog import known_clouds
from meshstack.core.sizing import Transformer


@dataclass(frozen=True)
class PlanRequest:
    model: Transformer
    mode: Literal["train", "serve"]
    precision: str = "bf16"
    mfu: float = sizing.PLANNING_MFU
    # training
    tokens: float = 0.0
    deadline_s: float | None = None
    nodes: int | None = None
    seq_len: int = 4096
    global_batch: int = 1024
    # serving
    requests_per_s: float = 0.0
    prompt_tokens: int = 512
    output_tokens: int = 256
    p99_s: float = 10.0
    quantization: str | None = None
    ttft_s: float | None = None  # time to first token, a target
    tpot_s: float | None = None  # time per output token, a target
    clouds: tuple[str, ...] = field(default_factory=known_clouds)
    # where and how: None plans in each catalog's base region; the market ranks the options by its price
    region: str | None = None
    market: str = "on-demand"
    budget: dict[str, float] = field(default_factory=dict)  # the spec's budget keys; options over them are rejected
    shape_note: str | None = None  # how the model's shape was chosen, where the request gave only its size


@dataclass(frozen=True)
class Option:
    """One way to meet the request. Training: the whole run; serving: a month at the target rate."""

    cloud: str
    region: str
    accelerator: str
    instance_type: str
    nodes: int
    devices: int
    layout: dict[str, Any]
    per_device_gib: float
    device_gib: float
    hours: float
    hourly_usd: float
    spot_hourly_usd: float | None
    block_hourly_usd: float | None
    kwh: float
    kg_co2e: float | None
    topology: str | None = None
    slices: int = 1
    market: str = "on-demand"

    @property
    def market_hourly_usd(self) -> float:
        """The hourly price on the market the request ranks by (spot, a capacity block, else on-demand)."""
        if self.market == "spot" and self.spot_hourly_usd is not None:
            return self.spot_hourly_usd
        if self.market == "capacity-block" and self.block_hourly_usd is not None:
            return self.block_hourly_usd
        return self.hourly_usd

    @property
    def label(self) -> str:
        shape = f"{self.slices} x {self.topology} {self.accelerator}" if self.topology else self.instance_type
        return f"{self.cloud}: {self.nodes} x {shape}" if not self.topology else f"{self.cloud}: {shape}"

    @property
    def cost_usd(self) -> float:
        return self.market_hourly_usd * self.hours

    @property
    def headroom(self) -> float:
        return 1 - self.per_device_gib / (self.device_gib * sizing.USABLE_MEMORY)

    def to_json(self) -> dict[str, Any]:
        spot, block = self.spot_hourly_usd, self.block_hourly_usd
        return {
            "option": self.label,
            "cloud": self.cloud,
            "region": self.region,
            "accelerator": self.accelerator,
            "instance_type": self.instance_type,
            "topology": self.topology,
            "slices": self.slices,
            "nodes": self.nodes,
            "devices": self.devices,
            "layout": self.layout,
            "per_device_gib": round(self.per_device_gib, 1),
            "memory_headroom": round(self.headroom, 3),
            "hours": round(self.hours, 1),
            "market": self.market,
            "cost_usd": round(self.cost_usd, 2),
            "on_demand_cost_usd": round(self.hourly_usd * self.hours, 2),
            "spot_cost_usd": None if spot is None else round(spot * self.hours, 2),
            "capacity_block_cost_usd": None if block is None else round(block * self.hours, 2),
            "kwh": round(self.kwh, 1),
            "kg_co2e": None if self.kg_co2e is None else round(self.kg_co2e, 1),
        }


@dataclass(frozen=True)
class Rejected:
    option: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"option": self.option, "reason": self.reason}


@dataclass(frozen=True)
class Plan:
    request: PlanRequest
    options: list[Option]
    rejected: list[Rejected]
    assumptions: list[str]
