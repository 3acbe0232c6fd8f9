"""What the platform watches, as data: the metric names the programs serve, the dashboard panels and the
alert rules over them.

One definition feeds every place that shows or checks them: the Grafana dashboard (EKS), the Cloud
Monitoring dashboard (GKE), the PrometheusRule or GKE ClusterRules, the demo report's panels drawn
from the local run, and the promtool tests that feed each alert series and check it fires and
resolves. The programs import the same names, so a renamed metric breaks a test, not a dashboard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from meshstack.core.validation import SpecModel
from meshstack.core.vendors import VENDORS, Chart, Vendor

# The trainer's metrics (workloads/jax/train_metrics.py), one series per process.
TRAIN_STEP = "meshstack_train_step"
TRAIN_LOSS = "meshstack_train_loss"
TRAIN_STEP_SECONDS = "meshstack_train_step_seconds"
TRAIN_TOKENS_PER_SECOND = "meshstack_train_tokens_per_second"
TRAIN_MFU = "meshstack_train_mfu"
TRAIN_LAST_STEP_TIME = "meshstack_train_last_step_timestamp_seconds"
TRAIN_LAST_CHECKPOINT_TIME = "meshstack_train_last_checkpoint_timestamp_seconds"
TRAIN_CHECKPOINT_AGE = "meshstack_train_checkpoint_age_seconds"
TRAIN_CHECKPOINT_INTERVAL = "meshstack_train_checkpoint_interval_seconds"
TRAIN_CHECKPOINT_SAVE_SECONDS = "meshstack_train_checkpoint_save_seconds"
TRAIN_RESTARTS = "meshstack_train_restarts"
TRAIN_PREEMPTIONS = "meshstack_train_preemptions_total"

# The server's metrics (workloads/jax/serving/metrics.py); the histograms have _bucket, _sum and _count series.
SERVE_LATENCY = "meshstack_request_latency_seconds"  # arrival to last token
SERVE_TTFT = "meshstack_time_to_first_token_seconds"
SERVE_TPOT = "meshstack_time_per_output_token_seconds"
SERVE_IN_FLIGHT = "meshstack_requests_in_flight"  # running + waiting: what KEDA scales on
SERVE_RUNNING = "meshstack_requests_running"
SERVE_QUEUE = "meshstack_requests_waiting"
SERVE_KV_USAGE = "meshstack_kv_cache_usage_ratio"
SERVE_PREFIX_HIT_RATIO = "meshstack_prefix_cache_hit_ratio"
SERVE_BATCH = "meshstack_batch_size"  # requests per decode step
SERVE_TOKENS_PER_SECOND = "meshstack_tokens_per_second"
SERVE_GENERATED_TOKENS = "meshstack_generated_tokens"  # a counter: exposed with the suffix _total

# Accelerator telemetry: NVIDIA's DCGM exporter, AWS's neuron-monitor, GKE's TPU system metrics (in
# Managed Prometheus, a Cloud Monitoring metric's name with ':' and '_' for '/' and '.').

# kube-state-metrics: node readiness, and node labels (the chart is told to expose the pool label).
NODE_READY = "kube_node_status_condition"
NODE_LABELS = "kube_node_labels"
POOL_LABEL = "label_meshstack_io_node_pool"
# The condition the EKS node monitoring agent sets from its accelerator checks (NVIDIA XID errors and
# DCGM diagnostics, Neuron errors); node auto repair replaces a node that reports it False.
ACCELERATOR_HEALTH = "AcceleratedHardwareReady"


class AlertSpec(SpecModel):
    """Thresholds of the alerts every cluster gets; the defaults suit a production training platform."""

    training_stalled_minutes: float = Field(default=15, gt=0, description="No training step for this long.")
    loss_divergence_ratio: float = Field(
        default=2.0, gt=1, description="The loss above this multiple of its lowest in the last hour."
    )
    checkpoint_intervals: float = Field(
        default=3, gt=1, description="The last checkpoint older than this many expected intervals."
    )
    accelerator_idle_percent: float = Field(
        default=10, ge=0, le=100, description="Accelerator utilisation below this counts as idle."
    )
    accelerator_idle_minutes: float = Field(
        default=30, gt=0, description="Accelerators under accelerator_idle_percent for this long while they bill."
    )
    serving_p99_seconds: float = Field(default=10, gt=0, description="The serving latency objective (p99).")
    queue_growing_minutes: float = Field(
        default=10, gt=0, description="Requests waiting, and more each minute, for this long."
    )
    node_not_ready_minutes: float = Field(default=5, gt=0, description="A training pool's node NotReady this long.")
    node_losses: int = Field(
        default=3,
        ge=1,
        description="Nodes of one pool gone NotReady (so repaired or replaced) within node_loss_hours: "
        "a pool that keeps losing nodes (a bad host batch, AMI or zone) costs restarts that repair alone hides.",
    )
    node_loss_hours: float = Field(default=6, gt=0, description="The window node_losses counts over.")


Severity = Literal["critical", "warning"]


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_minutes: float
    severity: Severity
    summary: str

    def rule(self) -> dict[str, object]:
        """The rule as Prometheus (and GKE's rule objects) take it."""
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": _duration(self.for_minutes),
            "labels": {"severity": self.severity},
            "annotations": {"summary": self.summary},
        }


def _lost_nodes(hours: float) -> str:
    """Each node of a pool that was NotReady at any time in the window: a node repair replaced (or
    is replacing), with its pool label from the node's labels (kept for the window after it is gone)."""
    window = _duration(hours * 60)
    return (
        f'(min_over_time({NODE_READY}{{condition="Ready",status="true"}}[{window}]) == 0) '
        f"* on (node) group_left ({POOL_LABEL}) max_over_time({NODE_LABELS}[{window}])"
    )


def _duration(minutes: float) -> str:
    seconds = round(minutes * 60)
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def alerts(spec: AlertSpec, accelerators: set[str], training_pools: list[str]) -> list[Alert]:
    """The alert rules for a cluster whose pools carry these accelerator vendors (catalog `vendor`s) and
    whose training jobs run on these pools."""
    window = _duration(spec.accelerator_idle_minutes)
    pools = "|".join(sorted(training_pools)) or "^$"
    out = [
        Alert(
            "TrainingStalled",
            f"time() - {TRAIN_LAST_STEP_TIME} > {spec.training_stalled_minutes * 60:g}",
            1,
            "critical",
            "Training job {{ $labels.job_name }} (process {{ $labels.process }}) finished no step for "
            f"{spec.training_stalled_minutes:g} minutes",
        ),
        Alert(
            "TrainingLossNotFinite",
            f"{TRAIN_LOSS} != {TRAIN_LOSS} or abs({TRAIN_LOSS}) == +Inf",
            0,
            "critical",
            "Training job {{ $labels.job_name }}: the loss is not a number",
        ),
        Alert(
            "TrainingLossDiverging",
            f"{TRAIN_LOSS} > {spec.loss_divergence_ratio:g} * min_over_time({TRAIN_LOSS}[1h])",
            5,
            "warning",
            "Training job {{ $labels.job_name }}: the loss is over "
            f"{spec.loss_divergence_ratio:g}x its lowest of the last hour",
        ),
        Alert(
            "CheckpointStale",
            f"{TRAIN_CHECKPOINT_AGE} > {spec.checkpoint_intervals:g} * {TRAIN_CHECKPOINT_INTERVAL}",
            5,
            "warning",
            "Training job {{ $labels.job_name }}: the last checkpoint is older than "
            f"{spec.checkpoint_intervals:g} checkpoint intervals",
        ),
        Alert(
            "ServingLatencyOverObjective",
            f"histogram_quantile(0.99, sum by (namespace, le) (rate({SERVE_LATENCY}_bucket[5m]))) "
            f"> {spec.serving_p99_seconds:g}",
            10,
            "warning",
            "Serving in {{ $labels.namespace }}: p99 latency over " + f"{spec.serving_p99_seconds:g} s",
        ),
        Alert(
            "ServingQueueGrowing",
            f"sum by (namespace) ({SERVE_QUEUE}) > 0 and sum by (namespace) (deriv({SERVE_QUEUE}[5m])) > 0",
            spec.queue_growing_minutes,
            "warning",
            "Serving in {{ $labels.namespace }}: requests are waiting, more each minute",
        ),
        Alert(
            "TrainingNodeNotReady",
            f'({NODE_READY}{{condition="Ready",status="true"}} == 0) '
            f'* on (node) group_left ({POOL_LABEL}) {NODE_LABELS}{{{POOL_LABEL}=~"{pools}"}}',
            spec.node_not_ready_minutes,
            "critical",
            "Node {{ $labels.node }} of pool {{ $labels." + POOL_LABEL + " }} is NotReady",
        ),
        Alert(
            "NodePoolLosingNodes",
            f"count by ({POOL_LABEL}) ({_lost_nodes(spec.node_loss_hours)}) >= {spec.node_losses}",
            0,
            "warning",
            "Pool {{ $labels." + POOL_LABEL + " }} lost {{ $value }} nodes in the last "
            f"{spec.node_loss_hours:g} h: repair keeps replacing them",
        ),
    ]
    for vendor in sorted(accelerators & VENDORS.keys()):
        health = VENDORS[vendor].health_alert
        if health is not None:
            condition = f'{NODE_READY}{{condition="{ACCELERATOR_HEALTH}",status="false"}} == 1'
            out.append(Alert(health.name, f"{condition} or {health.expr}", 0, "critical", health.summary))
    for vendor, panel in _charts(accelerators, lambda v: v.utilisation):
        out.append(
            Alert(
                f"AcceleratorsIdle{vendor.title().replace('-', '')}",
                f"{panel.expr} < {spec.accelerator_idle_percent:g}",
                spec.accelerator_idle_minutes,
                "warning",
                "A node's accelerators have been under "
                f"{spec.accelerator_idle_percent:g}% busy for {window} while the node bills",
            )
        )
    return out


@dataclass(frozen=True)
class Panel:
    """One chart: a PromQL query and, where the local run reports the same figure, its event field."""

    title: str
    expr: str
    unit: str
    local_field: str | None = None


TRAINING_PANELS = (
    Panel("Loss", f"avg by (job_name) ({TRAIN_LOSS})", "nats/token", "loss"),
    Panel("Tokens per second", f"max by (job_name) ({TRAIN_TOKENS_PER_SECOND})", "tokens/s", "tokens_per_s"),
    Panel("MFU", f"avg by (job_name) ({TRAIN_MFU})", "ratio", "mfu"),
    Panel("Step time", f"max by (job_name) ({TRAIN_STEP_SECONDS})", "s", "step_time_s"),
    Panel("Checkpoint age", f"max by (job_name) ({TRAIN_CHECKPOINT_AGE})", "s", "checkpoint_age_s"),
)
SERVING_PANELS = (
    Panel(
        "Latency p99",
        f"histogram_quantile(0.99, sum by (namespace, le) (rate({SERVE_LATENCY}_bucket[5m])))",
        "s",
        "latency_s",
    ),
    Panel(
        "Time to first token p99",
        f"histogram_quantile(0.99, sum by (namespace, le) (rate({SERVE_TTFT}_bucket[5m])))",
        "s",
        "ttft_s",
    ),
    Panel(
        "Running / waiting",
        f"sum by (namespace) ({SERVE_RUNNING}) or sum by (namespace) ({SERVE_QUEUE})",
        "requests",
        "running",
    ),
    Panel("Queue", f"sum by (namespace) ({SERVE_QUEUE})", "requests", "waiting"),
    Panel("KV cache in use", f"avg by (namespace) ({SERVE_KV_USAGE})", "ratio", "kv_usage"),
    Panel("Prefix cache hit rate", f"avg by (namespace) ({SERVE_PREFIX_HIT_RATIO})", "ratio", "prefix_hit_ratio"),
    Panel(
        "Batch size",
        f"sum by (namespace) (rate({SERVE_BATCH}_sum[5m])) / sum by (namespace) (rate({SERVE_BATCH}_count[5m]))",
        "requests",
        "batch",
    ),
    Panel("Tokens per second", f"sum by (namespace) ({SERVE_TOKENS_PER_SECOND})", "tokens/s", "tokens_per_s"),
)


# Node repair as it happens: nodes NotReady (being repaired), nodes failing the accelerator health
# check (EKS's node monitoring agent), and GPUs raising XID errors (the DCGM exporter).
NODE_HEALTH_PANELS = (
    Panel(
        "Nodes NotReady by pool",
        f'sum by ({POOL_LABEL}) (({NODE_READY}{{condition="Ready",status="true"}} == bool 0) '
        f"* on (node) group_left ({POOL_LABEL}) {NODE_LABELS})",
        "nodes",
    ),
    Panel(
        "Nodes failing accelerator health checks",
        f'sum by ({POOL_LABEL}) ({NODE_READY}{{condition="{ACCELERATOR_HEALTH}",status="false"}} '
        f"* on (node) group_left ({POOL_LABEL}) {NODE_LABELS})",
        "nodes",
    ),
    Panel("Nodes lost in the last hour by pool", f"count by ({POOL_LABEL}) ({_lost_nodes(1)})", "nodes"),
)


def _charts(accelerators: set[str], pick: Callable[[Vendor], Chart | None]) -> list[tuple[str, Panel]]:
    """(vendor, panel) for each vendor among `accelerators` whose registry entry has that chart, by name."""
    picked = [(v, pick(VENDORS[v])) for v in sorted(accelerators) if v in VENDORS]
    return [(v, Panel(c.title, c.expr, c.unit)) for v, c in picked if c is not None]


def accelerator_panels(accelerators: set[str]) -> tuple[Panel, ...]:
    """Utilisation per node of each accelerator vendor the cluster's pools carry: charted, and alerted on
    when low for long."""
    return tuple(panel for _, panel in _charts(accelerators, lambda v: v.utilisation))


def health_panels(accelerators: set[str]) -> tuple[Panel, ...]:
    """Each carried vendor's own health signal, charted beside the node conditions repair acts on."""
    return tuple(panel for _, panel in _charts(accelerators, lambda v: v.health))
