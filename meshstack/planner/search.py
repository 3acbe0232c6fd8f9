"""From a model and a goal to the clusters that meet it: every accelerator and instance type (and TPU
slice shape) of every cloud's catalog is sized with meshstack.core.sizing, priced from the catalog,
and given its energy; what cannot fit or cannot meet the goal is kept with the reason."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from meshstack.core import sizing
from meshstack.core.catalog import Catalog, InstanceType, known_clouds, load_catalog
from meshstack.core.pricing import HOURS_PER_MONTH, node_hourly
from meshstack.core.sizing import Transformer
from meshstack.core.spec.workload_fit import SERVER_WEIGHTS_SHARE

MAX_NODES = 1024  # the largest cluster the search considers
VLLM_MEMORY_UTILIZATION = 0.9  # vLLM's gpu_memory_utilization as emitted stacks leave it
MAX_SLICES = 64
P99_OVER_MEAN = 1.25  # the modeled latency is a mean; a p99 target leaves this much room over it
REPLICA_DEVICES = (1, 2, 4, 8)


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


@dataclass(frozen=True)
class _Unit:
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


def _region(catalog: Catalog, request: PlanRequest) -> str:
    return request.region or catalog.prices.region


def _units(catalog: Catalog, single_host: bool, region: str, rejected: list[Rejected]) -> list[_Unit]:
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
            units.append(_Unit(catalog, itype.accelerator, name, itype.accelerators))
    for generation, tpu in sorted(catalog.tpus.items()):
        if tpu.zones is not None and not tpu.zones.get(region):
            continue
        for topology, shape in tpu.topologies.items():
            if single_host and shape.hosts > 1:
                continue
            units.append(_Unit(catalog, generation, shape.machine_type, shape.chips, shape.hosts, topology))
    return units


def _node_hourly(unit: _Unit, region: str) -> tuple[float, float | None, float | None]:
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


def _option(
    request: PlanRequest, unit: _Unit, count: int, layout: dict[str, Any], per_device: float, hours: float
) -> Option:
    catalog = unit.catalog
    region = _region(catalog, request)
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


def _train(request: PlanRequest, unit: _Unit) -> Option | Rejected:
    accelerator = unit.catalog.accelerators[unit.accelerator]
    peak = accelerator.peak_tflops(request.precision)
    if not peak:
        return Rejected(unit.label(), f"{unit.accelerator} has no {request.precision} rate")
    limit = MAX_SLICES if unit.topology else MAX_NODES // unit.hosts

    # Tensor parallelism exchanges activations at every layer: it stays inside a node's NVLink (or a TPU
    # slice's ICI), never across nodes over their network.
    within = unit.devices
    tensors = tuple(t for t in (1, 2, 4, 8) if t <= within)

    def fit(count: int) -> sizing.TrainingFit:
        # Multislice: each slice holds a full copy of the state (FSDP inside a slice, data parallel across).
        shard = unit.devices if unit.topology else count * unit.devices
        return sizing.training_fit(
            request.model, request.precision, shard, request.seq_len, 1, accelerator.memory_gib, tensors
        )

    def fits(count: int) -> bool:
        return fit(count).per_device_gib <= accelerator.memory_gib * sizing.USABLE_MEMORY

    smallest = _first(fits, limit)
    if smallest is None:
        need = fit(limit).per_device_gib
        over = unit.devices if unit.topology else limit * unit.devices
        return Rejected(
            unit.label(),
            f"does not fit: {need:.0f} GiB per device even sharded over {over} devices; "
            f"a {unit.accelerator} holds {accelerator.memory_gib:g} GiB",
        )
    count = smallest
    if request.nodes is not None:
        count = math.ceil(request.nodes / unit.hosts)
        if count < smallest:
            return Rejected(unit.label(), f"{request.nodes} nodes are too few: the model needs {smallest * unit.hosts}")
    elif request.deadline_s is not None:
        # Time falls with the device count; recomputing activations (where memory needs it) adds a third.
        one = sizing.training_seconds(request.model, request.tokens, unit.devices, peak, request.mfu, False)
        for _ in range(3):
            factor = 8 / 6 if fit(count).recompute else 1
            wanted = max(smallest, math.ceil(one * factor / request.deadline_s))
            if wanted == count:
                break
            count = wanted
        if count > limit:
            return Rejected(
                unit.label(),
                f"needs {count * unit.hosts} nodes to meet the deadline, more than the {limit * unit.hosts} searched",
            )
    chosen = fit(count)
    # Every data-parallel rank needs a sequence of the global batch: past that, split layers wider.
    tensor = chosen.tensor
    while (count * unit.devices) // tensor > request.global_batch and tensor * 2 <= min(8, within):
        if request.model.heads % (tensor * 2):
            break
        tensor *= 2
    while (count * unit.devices) % tensor:  # whole tensor-parallel groups
        count += 1
    devices = count * unit.devices
    if devices // tensor > request.global_batch:
        return Rejected(
            unit.label(),
            f"{devices} devices in {devices // tensor} data-parallel ranks exceed the global batch of "
            f"{request.global_batch} sequences",
        )
    compute = sizing.training_seconds(request.model, request.tokens, devices, peak, request.mfu, chosen.recompute)
    steps = request.tokens / (request.global_batch * request.seq_len)
    network = unit.itype.network_gbps
    if unit.topology:
        per_step = sizing.gradient_seconds_per_step(request.model, count, unit.hosts, network)
    else:
        per_step = sizing.interconnect_seconds_per_step(request.model, count, network)
    # Communication overlapped with compute at best: the step takes the longer of the two.
    seconds = max(compute, steps * per_step)
    if request.deadline_s is not None and seconds > request.deadline_s * 1.001:
        return Rejected(
            unit.label(),
            f"network-bound: moving the sharded state between its {count * unit.hosts} nodes at {network:g} Gbps "
            f"each takes {steps * per_step / 86400:.1f} d, over the deadline",
        )
    if unit.topology:
        layout = {"data": count, "fsdp": unit.devices // tensor, "tensor": tensor}
    else:
        layout = {"data": 1, "fsdp": devices // tensor, "tensor": tensor}
    layout["recompute"] = chosen.recompute
    layout["network_bound"] = steps * per_step > compute
    return _option(request, unit, count, layout, chosen.per_device_gib, seconds / 3600)


def _first(fits: Any, limit: int) -> int | None:
    """The smallest count that fits, found by doubling then bisecting (fitting only gets easier)."""
    high = 1
    while high <= limit and not fits(high):
        high *= 2
    if high > limit:
        return limit if fits(limit) else None
    low = high // 2 + 1
    while low < high:
        mid = (low + high) // 2
        if fits(mid):
            high = mid
        else:
            low = mid + 1
    return high


def _serve(request: PlanRequest, unit: _Unit) -> Option | Rejected:
    accelerator = unit.catalog.accelerators[unit.accelerator]
    compute = "bf16" if request.precision == "int8" and request.quantization else request.precision
    peak = accelerator.peak_tflops(compute)
    if not peak:
        return Rejected(unit.label(), f"{unit.accelerator} has no {compute} rate")
    weights = request.quantization or request.precision
    budget = request.p99_s / P99_OVER_MEAN
    best: tuple[float, Option] | None = None
    last = "does not fit"
    sizes = (
        (unit.devices,)
        if unit.topology
        else [r for r in REPLICA_DEVICES if r <= unit.devices and unit.devices % r == 0]
    )
    for replica in sizes:
        decoding = sizing.serving(
            request.model,
            weights,
            replica,
            accelerator.memory_gib,
            accelerator.memory_gbps,
            peak,
            request.prompt_tokens,
            request.output_tokens,
            budget,
            request.mfu,
            ttft_s=request.ttft_s,
            tpot_s=request.tpot_s,
        )
        if decoding is not None and replica > 1 and not unit.topology:
            # Served by vLLM at tensor parallel (meshstack's own server takes one device): its weights must leave
            # room for the KV cache in the share of memory vLLM takes, as validation requires.
            share = SERVER_WEIGHTS_SHARE * VLLM_MEMORY_UTILIZATION * accelerator.memory_gib
            per_device = sizing.weights_bytes(request.model, weights) / sizing.GIB / replica
            if per_device > share:
                last = (
                    f"{per_device:.0f} GiB of weights per device over {replica}, more than vLLM's {share:.0f} GiB "
                    "for them"
                )
                continue
        if decoding is None:
            targets = [f"a {request.p99_s:g} s p99"]
            if request.ttft_s is not None:
                targets.append(f"a {request.ttft_s * 1000:g} ms time to first token")
            if request.tpot_s is not None:
                targets.append(f"a {request.tpot_s * 1000:g} ms time per output token")
            last = f"no batch fits {replica} device(s) within {' and '.join(targets)}"
            continue
        replicas = math.ceil(request.requests_per_s / decoding.requests_per_s)
        count = math.ceil(replicas * replica / unit.devices)
        layout = {
            "replicas": replicas,
            "devices_per_replica": replica,
            "batch": decoding.batch,
            "latency_s": round(decoding.latency_s, 2),
            "ttft_s": round(decoding.ttft_s, 3),
            "tpot_s": round(decoding.tpot_s, 4),
        }
        option = _option(request, unit, count, layout, decoding.per_device_gib, HOURS_PER_MONTH)
        if best is None or option.cost_usd < best[0]:
            best = (option.cost_usd, option)
    if best is None:
        return Rejected(unit.label(), last)
    return best[1]


def _over_budget(request: PlanRequest, option: Option) -> str | None:
    """Why an option breaks the budget the stack will carry, if it does."""
    caps = request.budget
    hourly = option.market_hourly_usd
    if "max_hourly_usd" in caps and hourly > caps["max_hourly_usd"]:
        return f"${hourly:,.2f}/hour on {option.market}, over --budget max_hourly_usd={caps['max_hourly_usd']:g}"
    if request.mode == "train" and "max_run_usd" in caps and option.cost_usd > caps["max_run_usd"]:
        cap = caps["max_run_usd"]
        return f"the run costs ${option.cost_usd:,.0f} on {option.market}, over --budget max_run_usd={cap:g}"
    if request.mode == "serve" and "max_monthly_usd" in caps and hourly * HOURS_PER_MONTH > caps["max_monthly_usd"]:
        return f"${hourly * HOURS_PER_MONTH:,.0f}/month, over --budget max_monthly_usd={caps['max_monthly_usd']:g}"
    if "max_accelerators" in caps and option.devices > caps["max_accelerators"]:
        return f"{option.devices} accelerators, over --budget max_accelerators={caps['max_accelerators']:g}"
    return None


def _market_reason(request: PlanRequest, option: Option) -> str | None:
    if request.market == "spot" and option.spot_hourly_usd is None:
        return "cannot be had as spot capacity"
    if request.market == "capacity-block" and option.block_hourly_usd is None:
        return "has no capacity-block price in the catalog"
    return None


def plan(request: PlanRequest) -> Plan:
    options: list[Option] = []
    rejected: list[Rejected] = []
    for cloud in request.clouds:
        catalog = load_catalog(cloud=cloud)
        region = _region(catalog, request)
        for unit in _units(catalog, request.mode == "serve", region, rejected):
            result = _train(request, unit) if request.mode == "train" else _serve(request, unit)
            if isinstance(result, Option):
                reason = _market_reason(request, result) or _over_budget(request, result)
                if reason is None:
                    options.append(result)
                else:
                    rejected.append(Rejected(unit.label(), reason))
            else:
                rejected.append(result)
    options.sort(key=lambda o: (o.cost_usd, o.hours))
    where = request.region or "each catalog's base region"
    assumptions = [
        f"MFU {request.mfu:.0%} of each accelerator's dense {request.precision} peak",
        f"{sizing.USABLE_MEMORY:.0%} of accelerator memory usable",
        f"prices in {where}, ranked on {request.market}; spot at the snapshot's or a typical discount",
        "energy: accelerators at the catalog's load share of board power, hosts from per-vCPU and per-GiB "
        f"coefficients, times PUE; CO2 at the grid intensity of {where}",
    ]
    if request.mode == "train":
        assumptions.append(
            "tensor parallelism within a node only; across nodes the weights are sharded (FSDP) and moved "
            f"three times a step at {sizing.NETWORK_EFFICIENCY:.0%} of each node's network rate, overlapped "
            "with compute at best"
        )
    if request.mode == "serve":
        assumptions.append(f"the modeled latency is a mean; p99 taken as {P99_OVER_MEAN}x it")
        if request.ttft_s is not None or request.tpot_s is not None:
            assumptions.append("time to first token is the prompt's prefill; time per output token one batch step")
    if request.shape_note:
        assumptions.append(request.shape_note)
    return Plan(request, options, rejected, assumptions)
