"""From a model and a goal to the clusters that meet it: every accelerator and instance type (and TPU
slice shape) of every cloud's catalog is sized with meshstack.core.sizing, priced from the catalog,
and given its energy; what cannot fit or cannot meet the goal is kept with the reason."""

from __future__ import annotations

from meshstack.core import sizing
from meshstack.core.catalog import load_catalog
from meshstack.core.pricing import HOURS_PER_MONTH
from meshstack.planner.options import Option, Plan, PlanRequest, Rejected
from meshstack.planner.serving import P99_OVER_MEAN, serve_option
from meshstack.planner.training import train_option
from meshstack.planner.units import available_units, region_of


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
        region = region_of(catalog, request)
        for unit in available_units(catalog, request.mode == "serve", region, rejected):
            result = train_option(request, unit) if request.mode == "train" else serve_option(request, unit)
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
