"""Human-readable forms of a preview: the terminal tree and the pull-request comment."""

from __future__ import annotations

from collections import Counter, defaultdict

from meshstack.cost import CostReport, Energy
from meshstack.preview.plan import Preview
from meshstack.preview.recorder import Resource


def usd(value: float, signed: bool = False) -> str:
    sign = ("+" if value >= 0 else "-") if signed else ("-" if value < 0 else "")
    return f"{sign}${abs(value):,.2f}"


def tree(preview: Preview) -> str:
    """The resource tree as `pulumi preview` shows it, then the cost and the policy verdict."""
    children: dict[str, list[Resource]] = defaultdict(list)
    urns = {r.urn for r in preview.resources}
    roots: list[Resource] = []
    for r in preview.resources:
        (children[r.parent] if r.parent in urns else roots).append(r)

    lines = [f"Stack {preview.stack} ({preview.spec.environment}, {preview.spec.region})"]

    def walk(nodes: list[Resource], prefix: str) -> None:
        ordered = sorted(nodes, key=lambda r: (r.custom, r.type, r.name))
        for i, node in enumerate(ordered):
            last = i == len(ordered) - 1
            lines.append(f"{prefix}{'└─ ' if last else '├─ '}{node.name}  [{node.type}]")
            walk(children[node.urn], prefix + ("   " if last else "│  "))

    walk(roots, "")
    components = len(preview.resources) - len(preview.custom_resources)
    lines.append(f"{len(preview.custom_resources)} resources to create in {components} components")
    cost = preview.cost
    lines.append(
        f"Cost: running its workloads {usd(cost.running_hourly_usd)}/hour ({usd(cost.running_monthly_usd)}/month"
        f"{MONTH_NOTE if cost.runs else ''}); idle {usd(cost.idle_hourly_usd)}/hour, as declared "
        f"{usd(cost.hourly_usd)}/hour ({usd(cost.monthly_usd)}/month), at max size {usd(cost.peak_hourly_usd)}/hour "
        f"({cost.price_basis}, {cost.price_date})"
    )
    lines.append(f"Energy: {energy_line(cost.energy)}")
    lines += [f"Training run {run.describe()}{run_budget(cost)}" for run in preview.runs]
    if preview.baseline is not None:
        base = preview.baseline.cost
        lines.append(
            f"Change against {preview.baseline.stack}: {usd(cost.running_hourly_usd - base.running_hourly_usd, True)}"
            f"/hour, {usd(cost.running_monthly_usd - base.running_monthly_usd, True)}/month running its workloads"
        )
    lines.append(f"Policy: {policy_line(preview)}")
    lines += [f"  config: {line}" for line in preview.policy.lines()]
    lines += [f"  not checked: {line}" for line in preview.spec.outside_stack()]
    for v in preview.violations:
        lines.append(f"  [{'undecided' if v.undecided else v.level}] {v.rule_id} {v.policy}: {v.message}")
    return "\n".join(lines)


def policy_line(preview: Preview) -> str:
    """The verdict's counts, what stayed undecided, and what the stack's config turned off or lowered."""
    if preview.policy.nothing_ran:
        return f"not checked: every rule is disabled by {preview.policy.source}"
    line = f"{len(preview.mandatory_violations)} mandatory, {len(preview.advisory_violations)} advisory violation(s)"
    if preview.undecided:
        line += f", {len(preview.undecided)} rule(s) undecided until values are known"
    summary = preview.policy.summary()
    return f"{line}; {summary}" if summary else line


def verdict(preview: Preview) -> str:
    """The pull-request comment's headline: never "passes" where no rule ran, and never without saying
    which rules the config turned off."""
    if preview.mandatory_violations:
        return "❌ blocked by policy"
    if preview.policy.nothing_ran:
        return f"⚠️ not checked: every rule is disabled by {preview.policy.source}"
    summary = preview.policy.summary()
    return f"✅ passes policy ({summary})" if summary else "✅ passes policy"


MONTH_NOTE = ", each training run once"


def run_budget(cost: CostReport) -> str:
    return "" if cost.max_run_usd is None else f" (budget {usd(cost.max_run_usd)} per run)"


def _kwh(energy: Energy, kwh: float) -> str:
    co2 = energy.kg_co2e(kwh)
    return f"{kwh:,.0f} kWh" + (f" ({co2:,.0f} kgCO2e)" if co2 is not None else "")


def energy_line(energy: Energy) -> str:
    """kWh and kgCO2e per month at the three levels the cost is given at."""
    grid = f"{energy.grid_gco2e_per_kwh:g} gCO2e/kWh" if energy.grid_gco2e_per_kwh is not None else "no grid figure"
    return (
        f"idle {_kwh(energy, energy.idle_monthly_kwh)}, as declared {_kwh(energy, energy.monthly_kwh)}, "
        f"running its workloads {_kwh(energy, energy.running_monthly_kwh)} per month ({energy.region}, {grid})"
    )


def comment_marker(stack: str) -> str:
    """Hidden in the comment, so the pull-request workflow edits this stack's comment and no other."""
    return f"<!-- meshstack-preview:{stack} -->"


def markdown(preview: Preview) -> str:
    """The pull-request comment: what will be created, what it costs and what it breaks."""
    cost = preview.cost
    out = [comment_marker(preview.stack), f"## meshstack preview: `{preview.stack}`", ""]
    headline = (
        f"**{verdict(preview)}** · {len(preview.custom_resources)} resources to create · running its workloads "
        f"{usd(cost.running_hourly_usd)}/hour · {usd(cost.running_monthly_usd)}/month"
    )
    if preview.baseline is not None:
        base = preview.baseline.cost
        headline += f" ({usd(cost.running_monthly_usd - base.running_monthly_usd, True)}/month)"
    out += [headline, ""]

    out += [
        "### Cost",
        "",
        "| | per hour | per month |",
        "| --- | ---: | ---: |",
        f"| **running its workloads**{MONTH_NOTE if cost.runs else ''} | **{usd(cost.running_hourly_usd)}** | "
        f"**{usd(cost.running_monthly_usd)}** |",
        f"| idle (every pool at its min size, prepaid capacity included) | {usd(cost.idle_hourly_usd)} | "
        f"{usd(cost.idle_monthly_usd)} |",
        f"| this change, as declared | {usd(cost.hourly_usd)} | {usd(cost.monthly_usd)} |",
    ]
    if preview.baseline is not None:
        base = preview.baseline.cost
        out += [
            f"| baseline (`{preview.baseline.stack}`), running | {usd(base.running_hourly_usd)} | "
            f"{usd(base.running_monthly_usd)} |",
            f"| **difference**, running | **{usd(cost.running_hourly_usd - base.running_hourly_usd, True)}** | "
            f"**{usd(cost.running_monthly_usd - base.running_monthly_usd, True)}** |",
        ]
    out += [f"| at max size | {usd(cost.peak_hourly_usd)} | {usd(cost.peak_monthly_usd)} |", ""]
    energy = cost.energy
    out += [
        "| energy per month | idle | as declared | running its workloads |",
        "| --- | ---: | ---: | ---: |",
        f"| kWh | {energy.idle_monthly_kwh:,.0f} | {energy.monthly_kwh:,.0f} | {energy.running_monthly_kwh:,.0f} |",
    ]
    if energy.grid_gco2e_per_kwh is not None:
        co2 = [
            energy.kg_co2e(k) or 0.0 for k in (energy.idle_monthly_kwh, energy.monthly_kwh, energy.running_monthly_kwh)
        ]
        out.append(
            f"| kgCO2e ({energy.region}, {energy.grid_gco2e_per_kwh:g} g/kWh) | "
            + " | ".join(f"{c:,.0f}" for c in co2)
            + " |"
        )
    out.append("")
    if preview.runs:
        budget = run_budget(cost)
        out += ["Training runs, end to end, per run:", ""] + [f"- {run.describe()}{budget}" for run in preview.runs]
        out.append("")
    if preview.baseline is not None:
        if preview.cost_changes:
            out += [
                "| resource | now | running per hour before | running per hour after | difference per month |",
                "| --- | --- | ---: | ---: | ---: |",
            ]
            out += [
                f"| {c.key} | {c.description} | {usd(c.before_running_hourly_usd)} | {usd(c.after_running_hourly_usd)} "
                f"| {usd(c.delta_running_hourly_usd * 730, True)} |"
                for c in preview.cost_changes
            ]
        else:
            out.append("No resource changes cost.")
        out.append("")
    else:
        out += [
            "| resource | what | idle per hour | per hour | running per hour | per month |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
        ]
        out += [
            f"| {i.name} | {i.description} | {usd(i.idle_hourly_usd)} | {usd(i.hourly_usd)} | "
            f"{usd(i.running_hourly_usd)} | {usd(i.monthly_usd)} |"
            for i in cost.items
        ]
        out.append("")
    out.append(
        f"<sub>Prices: {cost.price_source}; list prices as of {cost.price_date}. "
        + " ".join(f"{a[0].upper()}{a[1:]}." for a in cost.assumptions)
        + "</sub>"
    )
    out.append("")

    out += ["### Policy", ""]
    if preview.policy.lines():
        out += [f"Rule levels set by `{preview.policy.source}`:", ""]
        out += [f"- {line}" for line in preview.policy.lines()]
        out.append("")
    outside = preview.spec.outside_stack()
    if outside:
        out += ["Not checked, outside this stack:", ""] + [f"- {line}" for line in outside] + [""]
    if not preview.violations:
        out.append("No violations.")
    else:
        out += [
            "| level | severity | rule | resource | problem | what to change |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for v in preview.violations:
            resource = v.urn.rsplit("::", 1)[-1] if v.urn else "(stack)"
            rule = f"`{v.rule_id}` `{v.policy}`"
            level = "undecided" if v.undecided else v.level
            out.append(f"| {level} | {v.severity} | {rule} | {resource} | {v.message} | {v.remediation} |")
    out.append("")

    out += ["### Resources", "", "| type | count |", "| --- | ---: |"]
    counts = Counter(r.type for r in preview.custom_resources)
    out += [f"| `{t}` | {n} |" for t, n in sorted(counts.items())]
    return "\n".join(out) + "\n"
