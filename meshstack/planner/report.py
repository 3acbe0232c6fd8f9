"""The plan as a ranked table with the reasons behind every rejection, or as JSON."""

from __future__ import annotations

from typing import Any

from meshstack.planner.options import Option, Plan


def _duration(hours: float) -> str:
    return f"{hours / 24:.1f} d" if hours >= 48 else f"{hours:.1f} h"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.0f}"


def _layout(option: Option, targets: bool = False) -> str:
    layout = option.layout
    if "replicas" in layout:
        shown = (
            f"{layout['replicas']} replicas x {layout['devices_per_replica']} dev, batch {layout['batch']}, "
            f"{layout['latency_s']} s"
        )
        if targets:
            shown += f", {layout['ttft_s'] * 1000:.0f}/{layout['tpot_s'] * 1000:.0f} ms"
        return shown
    parts = [f"{k} {layout[k]}" for k in ("data", "fsdp", "tensor") if layout.get(k, 1) > 1]
    return ", ".join(parts or ["1 device"]) + (", recompute" if layout["recompute"] else "")


def table(plan: Plan, top: int) -> str:
    request = plan.request
    serve = request.mode == "serve"
    span = "per month" if serve else "run"
    targets = request.ttft_s is not None or request.tpot_s is not None
    header = (
        f"{'#':>2}  {'option':36} {'layout' + (' (ttft/tpot)' if targets else ''):44} {'mem/dev':>9} {'headroom':>8} "
        f"{'time':>8} {'cost ' + span:>14} {'spot':>12} {'kWh':>10} {'kgCO2e':>9}"
    )
    where = f" in {request.region}" if request.region else ""
    market = f", {request.market}" if request.market != "on-demand" else ""
    lines = [
        f"meshstack plan: {request.mode} {request.model.params / 1e9:.1f}B parameters in {request.precision}"
        + (f", {request.quantization} weights" if request.quantization else "")
        + where
        + market,
        header,
    ]
    for i, option in enumerate(plan.options[:top], 1):
        spot = None if option.spot_hourly_usd is None else option.spot_hourly_usd * option.hours
        co2 = "-" if option.kg_co2e is None else f"{option.kg_co2e:,.0f}"
        lines.append(
            f"{i:>2}  {option.label:36} {_layout(option, targets):44} {option.per_device_gib:>6.1f} GiB "
            f"{option.headroom:>8.0%} {_duration(option.hours) if not serve else '730 h':>8} "
            f"{_usd(option.cost_usd):>14} {_usd(spot):>12} {option.kwh:>10,.0f} {co2:>9}"
        )
    if not plan.options:
        lines.append("    no option meets the request")
    if len(plan.options) > top:
        lines.append(f"    ... {len(plan.options) - top} more (--top N shows them)")
    lines.append(f"Rejected ({len(plan.rejected)}):")
    lines += [f"  {r.option}: {r.reason}" for r in plan.rejected]
    lines.append("Assumptions: " + "; ".join(plan.assumptions) + ".")
    return "\n".join(lines)


def to_json(plan: Plan) -> dict[str, Any]:
    request = plan.request
    return {
        "request": {
            "mode": request.mode,
            "params": request.model.params,
            "precision": request.precision,
            "quantization": request.quantization,
            "mfu": request.mfu,
            "region": request.region,
            "market": request.market,
            "budget": request.budget,
            **(
                {"tokens": request.tokens, "deadline_s": request.deadline_s, "nodes": request.nodes}
                if request.mode == "train"
                else {
                    "requests_per_s": request.requests_per_s,
                    "p99_s": request.p99_s,
                    "ttft_s": request.ttft_s,
                    "tpot_s": request.tpot_s,
                }
            ),
        },
        "options": [o.to_json() for o in plan.options],
        "rejected": [r.to_json() for r in plan.rejected],
        "assumptions": plan.assumptions,
    }
