"""Sizing a served model on one unit: the replica size and batch that meet the latency targets at the
lowest cost, and the replicas the request rate needs."""

from __future__ import annotations

import math

from meshstack.core import sizing
from meshstack.core.pricing import HOURS_PER_MONTH
from meshstack.core.spec.workload_fit import SERVER_WEIGHTS_SHARE
from meshstack.planner.options import Option, PlanRequest, Rejected
from meshstack.planner.units import Unit, priced_option

VLLM_MEMORY_UTILIZATION = 0.9  # vLLM's gpu_memory_utilization as emitted stacks leave it
P99_OVER_MEAN = 1.25  # the modeled latency is a mean; a p99 target leaves this much room over it
REPLICA_DEVICES = (1, 2, 4, 8)


def serve_option(request: PlanRequest, unit: Unit) -> Option | Rejected:
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
        option = priced_option(request, unit, count, layout, decoding.per_device_gib, HOURS_PER_MONTH)
        if best is None or option.cost_usd < best[0]:
            best = (option.cost_usd, option)
    if best is None:
        return Rejected(unit.label(), last)
    return best[1]
