"""Sizing a training run on one unit: the fewest nodes that hold the state, more to meet a deadline,
the tensor and data-parallel layout, and the time the network adds."""

from __future__ import annotations

import math
from typing import Any

from meshstack.core import sizing
from meshstack.planner.options import Option, PlanRequest, Rejected
from meshstack.planner.units import Unit, priced_option

MAX_NODES = 1024  # the largest cluster the search considers
MAX_SLICES = 64


def train_option(request: PlanRequest, unit: Unit) -> Option | Rejected:
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
    return priced_option(request, unit, count, layout, chosen.per_device_gib, seconds / 3600)


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
