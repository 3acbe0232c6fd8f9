"""Pictures of a stack: its topology, where its money goes, and the dashboard's panels from its local run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from meshstack.core.observability import Panel
from meshstack.core.spec import StackSpec, TrainingWorkload
from meshstack.cost import CostReport

COLORS = {"cluster": "#dbeafe", "pool": "#bfdbfe", "storage": "#fde68a", "workload": "#bbf7d0", "edge": "#475569"}


Box = tuple[float, float, float, float]


def _box(ax: plt.Axes, x: float, y: float, w: float, h: float, text: str, color: str) -> Box:
    ax.add_patch(
        FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02", facecolor=color, edgecolor="#334155", zorder=2)
    )
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8, zorder=3)
    return x, y, w, h


def _arrow(ax: plt.Axes, source: Box, target: Box, label: str = "", color: str = COLORS["edge"]) -> None:
    """From the source's right edge to the target's left edge, behind the boxes."""
    start = (source[0] + source[2], source[1] + source[3] / 2)
    end = (target[0], target[1] + target[3] / 2)
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=10,
            color=color,
            linewidth=1,
            connectionstyle="arc3,rad=0.08",
            zorder=1,
        )
    )
    if label:
        ax.text(start[0] + 0.1, start[1] + 0.08, label, fontsize=7, color=color, zorder=3)


def topology(spec: StackSpec, path: Path) -> Path:
    """Clusters and their pools, storage, and workloads with what they run on and read from."""
    pools = [(c, p) for c in spec.clusters for p in c.node_pools]
    stores = [("bucket", b.name) for b in spec.storage.buckets] + [
        (kind, f.name) for kind in ("lustre", "efs", "filestore") for f in getattr(spec.storage, kind)
    ]
    rows = max(len(pools), len(stores), len(spec.workloads), 1)
    fig, ax = plt.subplots(figsize=(11, 1.3 * rows + 1.6))
    ax.set_xlim(0, 11)
    ax.set_ylim(0, 1.3 * rows + 1.2)
    ax.axis("off")
    ax.set_title(f"Stack {spec.name}: {spec.environment}, {spec.region}", fontsize=11)
    top = 1.3 * rows + 0.4
    for x, title in ((0.2, "workloads"), (3.6, "clusters / node pools"), (8.0, "storage")):
        ax.text(x, top + 0.3, title, fontsize=9, weight="bold")
    pool_at = {}
    for i, (cluster, pool) in enumerate(pools):
        label = (
            f"{cluster.name} / {pool.name}\n{pool.instance_type} x {pool.min_nodes}-{pool.max_nodes}\n"
            f"{pool.market}{', EFA' if pool.efa else ''}"
        )
        pool_at[(cluster.name, pool.name)] = _box(ax, 3.6, top - 1.3 * (i + 1) - 0.25, 2.6, 1.0, label, COLORS["pool"])
    store_at = {}
    for i, (kind, name) in enumerate(stores):
        store_at[(kind, name)] = _box(
            ax, 8.0, top - 1.3 * (i + 1) + 0.25, 2.4, 1.0, f"{kind}\n{name}", COLORS["storage"]
        )
    for i, workload in enumerate(spec.workloads):
        if isinstance(workload, TrainingWorkload):
            label = f"training {workload.name}\n{workload.processes} processes"
        else:
            label = f"inference {workload.name}\n{workload.min_replicas}-{workload.max_replicas} replicas"
        reads = [("bucket", ref.bucket) for ref in spec.storage_refs(workload)]
        reads += [m.source for m in workload.mounts]
        at = _box(ax, 0.2, top - 1.3 * (i + 1), 2.4, 1.0, label, COLORS["workload"])
        _arrow(ax, at, pool_at[(workload.cluster, workload.node_pool)], "runs on")
        for ref in dict.fromkeys(reads):
            _arrow(ax, at, store_at[ref], color="#b45309")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cost_breakdown(cost: CostReport, path: Path) -> Path:
    """Monthly cost per component, largest first."""
    items = sorted(cost.by_component().items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(items) + 1.4))
    monthly = [v * 730 for _, v in items]
    ax.barh([k for k, _ in items], monthly, color="#3b82f6")
    for y, value in enumerate(monthly):
        ax.text(value, y, f" \\${value:,.0f}", va="center", fontsize=8)
    ax.set_xlabel("USD per month (at the desired size)")
    # A bare $ starts mathtext in matplotlib; \$ is a dollar sign.
    ax.set_title(f"Cost: \\${cost.hourly_usd:,.2f}/hour, \\${cost.monthly_usd:,.0f}/month ({cost.price_date} prices)")
    ax.margins(x=0.25)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def panels(
    title: str,
    chosen: Sequence[Panel],
    series: Mapping[str, Sequence[tuple[float, float]]],
    x_label: str,
    path: Path,
    missing: Mapping[str, str] | None = None,
    x_labels: Mapping[str, str] | None = None,
) -> Path:
    """The dashboard's panels, drawn from what the local run reported: each panel's `local_field`
    picks its series (on `x_label`, or its own in `x_labels`); a panel the local run has no figure
    for says why."""
    cols = 2
    rows = (len(chosen) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(10, 2.6 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, chosen, strict=False):
        points = series.get(panel.local_field or "", [])
        ax.set_title(f"{panel.title} ({panel.unit})", fontsize=9)
        ax.grid(alpha=0.3)
        if points:
            ax.plot([x for x, _ in points], [y for _, y in points], color="#2563eb", linewidth=1.4, marker=".")
            ax.set_xlabel((x_labels or {}).get(panel.local_field or "", x_label), fontsize=8)
        else:
            why = (missing or {}).get(panel.local_field or "", "not reported by the local run")
            ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=8, color="#64748b", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
    for ax in list(axes.flat)[len(chosen) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
