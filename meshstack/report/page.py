"""One self-contained HTML page: the preview's numbers, the three pictures, the training and serving results."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from html import escape
from pathlib import Path

from meshstack.preview.plan import Preview
from meshstack.preview.render import energy_line, usd

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #0f172a; }
h1 { margin-bottom: 0.2rem; } .sub { color: #475569; margin-top: 0; }
.cards { display: flex; gap: 1rem; flex-wrap: wrap; margin: 1.5rem 0; }
.card { border: 1px solid #cbd5e1; border-radius: 0.5rem; padding: 0.8rem 1.2rem; min-width: 10rem; }
.card .value { font-size: 1.6rem; font-weight: 600; } .card .label { color: #475569; font-size: 0.85rem; }
table { border-collapse: collapse; width: 100%; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #e2e8f0; padding: 0.35rem 0.5rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #e2e8f0; border-radius: 0.5rem; margin: 0.5rem 0 1.5rem; }
.ok { color: #15803d; } .bad { color: #b91c1c; }
"""


@dataclass(frozen=True)
class Answer:
    prompt: str
    text: str
    latency_ms: float
    ttft_ms: float
    tokens: int


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'


def _card(ident: str, value: str, label: str) -> str:
    return (
        f'<div class="card"><div class="value" id="{ident}">{escape(value)}</div>'
        f'<div class="label">{escape(label)}</div></div>'
    )


def render(
    preview: Preview,
    pictures: dict[str, Path],
    training: list[tuple[int, float]],
    answers: list[Answer],
    elapsed_s: float,
) -> str:
    cost, violations = preview.cost, preview.violations
    mandatory = len(preview.mandatory_violations)
    if mandatory:
        verdict = '<span class="bad">blocked</span>'
    elif preview.policy.nothing_ran:
        verdict = f'<span class="bad">not checked: every rule is disabled by {escape(preview.policy.source)}</span>'
    else:
        summary = preview.policy.summary()
        verdict = '<span class="ok">passes</span>' + (f" ({escape(summary)})" if summary else "")
    cards = "".join(
        [
            _card("resources-count", str(len(preview.custom_resources)), "resources to create"),
            _card("cost-total", f"{usd(cost.hourly_usd)}/hour", f"{usd(cost.monthly_usd)} per month, as declared"),
            _card(
                "energy-running",
                f"{cost.energy.running_monthly_kwh:,.0f} kWh",
                "per month running its workloads"
                + (
                    f", {co2:,.0f} kgCO2e"
                    if (co2 := cost.energy.kg_co2e(cost.energy.running_monthly_kwh)) is not None
                    else ""
                ),
            ),
            _card(
                "cost-running",
                f"{usd(cost.running_hourly_usd)}/hour",
                f"running its workloads (idle {usd(cost.idle_hourly_usd)}/hour)",
            ),
            _card("violations-count", str(len(violations)), f"policy violations ({mandatory} mandatory)"),
            _card(
                "final-loss",
                f"{training[-1][1]:.3f}" if training else "-",
                f"loss after {training[-1][0]} steps" if training else "no training",
            ),
        ]
    )
    cost_rows = "".join(
        f"<tr><td>{escape(i.name)}</td><td>{escape(i.description)}</td><td class=num>{usd(i.idle_hourly_usd)}</td>"
        f"<td class=num>{usd(i.hourly_usd)}</td><td class=num>{usd(i.running_hourly_usd)}</td>"
        f"<td class=num>{usd(i.monthly_usd)}</td></tr>"
        for i in cost.items
    )
    violation_rows = (
        "".join(
            f"<tr><td>{escape(v.level)}</td><td>{escape(v.rule_id)} {escape(v.policy)}</td><td>{escape(v.message)}</td>"
            f"<td>{escape(v.remediation)}</td></tr>"
            for v in violations
        )
        or '<tr><td colspan="4" class="ok">No violations.</td></tr>'
    )
    answer_rows = "".join(
        f"<tr><td>{escape(a.prompt)}</td><td>{escape(a.text)}</td><td class=num>{a.latency_ms:.0f} ms</td>"
        f"<td class=num>{a.ttft_ms:.0f} ms</td><td class=num>{a.tokens}</td></tr>"
        for a in answers
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>meshstack demo: {escape(preview.stack)}</title><style>{STYLE}</style></head>
<body>
<h1>meshstack demo: stack <code>{escape(preview.stack)}</code></h1>
<p class="sub">{escape(preview.spec.environment)}, {escape(preview.spec.region)}; policy {verdict};
finished in {elapsed_s:.0f} s</p>
<div class="cards">{cards}</div>
<h2>Topology</h2>{_image(pictures["topology"], "the stack's topology")}
<h2>Cost</h2>{_image(pictures["cost"], "cost per component")}
<table><tr><th>resource</th><th>what</th><th>idle per hour</th><th>per hour</th><th>running per hour</th>
<th>per month</th></tr>{cost_rows}</table>
<p class="sub">Energy: {escape(energy_line(cost.energy))}. {escape(cost.energy.source)}.</p>
<p class="sub">Prices: {escape(cost.price_source)}; list prices as of {escape(cost.price_date)}.
{escape(" ".join(a[0].upper() + a[1:] + "." for a in cost.assumptions))}</p>
<h2>Policy</h2>
{"".join(f'<p class="sub">{escape(line)}</p>' for line in preview.policy.lines())}
<table><tr><th>level</th><th>policy</th><th>problem</th><th>what to change</th></tr>{violation_rows}</table>
<h2>Training</h2>{_image(pictures["training"], "training panels")}
<h2>Serving</h2>{_image(pictures["serving"], "serving panels")}
<table><tr><th>prompt</th><th>answer</th><th>latency</th><th>first token</th><th>tokens</th></tr>{answer_rows}</table>
</body>
</html>
"""
