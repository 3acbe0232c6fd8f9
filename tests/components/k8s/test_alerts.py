"""The alert rules the clusters get, checked by Prometheus' own promtool: the rules parse, and each
alert fires on the series that should raise it (with its labels and rendered summary) and resolves
when they recover. promtool comes from Debian's `prometheus` package (the README's test command
installs it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshstack.components.k8s.monitoring import rule_groups
from meshstack.core.observability import AlertSpec

VENDORS = {"nvidia", "aws-neuron", "google-tpu"}
TRAINING_POOLS = ["h100"]
JOB = {"job_name": "pretrain", "process": "0"}


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: apt-get install prometheus (the README's test command does)"
    return path


def alert(name: str, severity: str, summary: str, **labels: str) -> dict[str, Any]:
    return {"exp_labels": {"severity": severity, **labels}, "exp_annotations": {"summary": summary}}


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {"series": f"{name}{{{selector}}}", "values": values}


def case(name: str, inputs: list[dict[str, str]], firing_at: str, fired: list[dict[str, Any]], quiet: list[str]):
    """`name` fires with `fired` at `firing_at` and is silent at each time in `quiet`."""
    checks = [{"eval_time": firing_at, "alertname": name, "exp_alerts": fired}]
    checks += [{"eval_time": t, "alertname": name, "exp_alerts": []} for t in quiet]
    return {"interval": "1m", "input_series": inputs, "alert_rule_test": checks}


CASES = [
    case(
        "TrainingStalled",
        # steps every minute, none from minute 10 to 41, then steps again
        [series("meshstack_train_last_step_timestamp_seconds", "0+60x10 600x30 2520+60x10", **JOB)],
        "30m",
        [
            alert(
                "TrainingStalled",
                "critical",
                "Training job pretrain (process 0) finished no step for 15 minutes",
                **JOB,
            )
        ],
        ["20m", "50m"],
    ),
    case(
        "TrainingLossNotFinite",
        [series("meshstack_train_loss", "3 2.9 2.8 NaN NaN 2.7 2.6", **JOB)],
        "4m",
        [alert("TrainingLossNotFinite", "critical", "Training job pretrain: the loss is not a number", **JOB)],
        ["2m", "6m"],
    ),
    case(
        "TrainingLossNotFinite",
        [series("meshstack_train_loss", "3 Inf 2.8", **JOB)],
        "1m",
        [alert("TrainingLossNotFinite", "critical", "Training job pretrain: the loss is not a number", **JOB)],
        ["2m"],
    ),
    case(
        "TrainingLossDiverging",
        [series("meshstack_train_loss", "3 2.5 2 1.5 1x10 5x20 1x10", **JOB)],
        "30m",
        [
            alert(
                "TrainingLossDiverging",
                "warning",
                "Training job pretrain: the loss is over 2x its lowest of the last hour",
                **JOB,
            )
        ],
        ["10m", "40m"],
    ),
    case(
        "CheckpointStale",
        [
            series("meshstack_train_checkpoint_interval_seconds", "100x60", **JOB),
            series("meshstack_train_checkpoint_age_seconds", "0+60x20 0+60x4 0x20", **JOB),
        ],
        "15m",
        [
            alert(
                "CheckpointStale",
                "warning",
                "Training job pretrain: the last checkpoint is older than 3 checkpoint intervals",
                **JOB,
            )
        ],
        ["5m", "30m"],
    ),
    case(
        "ServingLatencyOverObjective",
        # 60 requests a minute: under 1 s for 10 minutes, then between 10 and 30 s for 30, then fast again
        [
            series("meshstack_request_latency_seconds_bucket", "0+60x10 600x30 600+60x20", namespace="ml", le="1"),
            series("meshstack_request_latency_seconds_bucket", "0+60x10 600x30 600+60x20", namespace="ml", le="10"),
            series("meshstack_request_latency_seconds_bucket", "0+60x60", namespace="ml", le="30"),
            series("meshstack_request_latency_seconds_bucket", "0+60x60", namespace="ml", le="+Inf"),
        ],
        "30m",
        [alert("ServingLatencyOverObjective", "warning", "Serving in ml: p99 latency over 10 s", namespace="ml")],
        ["8m", "55m"],
    ),
    case(
        "ServingQueueGrowing",
        [series("meshstack_requests_waiting", "0x10 0+1x30 0x20", namespace="ml", pod="chat-1")],
        "30m",
        [
            alert(
                "ServingQueueGrowing",
                "warning",
                "Serving in ml: requests are waiting, more each minute",
                namespace="ml",
            )
        ],
        ["10m", "50m"],
    ),
    case(
        "TrainingNodeNotReady",
        [
            series("kube_node_status_condition", "1x5 0x20 1x10", node="gpu-1", condition="Ready", status="true"),
            series("kube_node_labels", "1x40", node="gpu-1", label_meshstack_io_node_pool="h100"),
            # a system node going down is not a training pool's problem
            series("kube_node_status_condition", "0x40", node="cpu-1", condition="Ready", status="true"),
            series("kube_node_labels", "1x40", node="cpu-1", label_meshstack_io_node_pool="system"),
        ],
        "20m",
        [
            alert(
                "TrainingNodeNotReady",
                "critical",
                "Node gpu-1 of pool h100 is NotReady",
                node="gpu-1",
                condition="Ready",
                status="true",
                label_meshstack_io_node_pool="h100",
            )
        ],
        ["3m", "35m"],
    ),
    case(
        "NodePoolLosingNodes",
        # three h100 nodes go NotReady one after another (each replaced by repair); a system node's loss
        # is no training pool's count. Six hours after the third, the pool has recovered.
        [
            series("kube_node_status_condition", "1x10 0x5 _x400", node="gpu-1", condition="Ready", status="true"),
            series("kube_node_status_condition", "1x30 0x5 _x400", node="gpu-2", condition="Ready", status="true"),
            series("kube_node_status_condition", "1x50 0x5 _x400", node="gpu-3", condition="Ready", status="true"),
            series("kube_node_labels", "1x15 _x400", node="gpu-1", label_meshstack_io_node_pool="h100"),
            series("kube_node_labels", "1x35 _x400", node="gpu-2", label_meshstack_io_node_pool="h100"),
            series("kube_node_labels", "1x55 _x400", node="gpu-3", label_meshstack_io_node_pool="h100"),
            series("kube_node_status_condition", "0x60", node="cpu-1", condition="Ready", status="true"),
            series("kube_node_labels", "1x60", node="cpu-1", label_meshstack_io_node_pool="system"),
        ],
        "52m",
        [
            alert(
                "NodePoolLosingNodes",
                "warning",
                "Pool h100 lost 3 nodes in the last 6 h: repair keeps replacing them",
                label_meshstack_io_node_pool="h100",
            )
        ],
        ["40m", "7h"],
    ),
    case(
        "GpuHealthCheckFailed",
        # the node monitoring agent's DCGM check fails on gpu-1 for 10 minutes (then it is replaced);
        # an XID error on gpu-2 raises it too
        [
            series(
                "kube_node_status_condition",
                "0x10 1x10 stale",
                node="gpu-1",
                condition="AcceleratedHardwareReady",
                status="false",
            ),
            series("DCGM_FI_DEV_XID_ERRORS", "0x30 79x5 0x5", Hostname="gpu-2", gpu="3"),
        ],
        "15m",
        [
            alert(
                "GpuHealthCheckFailed",
                "critical",
                "A GPU node failed its health check (DCGM diagnostics or an XID error): it is drained and "
                "replaced, and its job resumes from its last checkpoint",
                node="gpu-1",
                condition="AcceleratedHardwareReady",
                status="false",
            )
        ],
        ["5m", "25m", "39m"],
    ),
    case(
        "GpuHealthCheckFailed",
        [series("DCGM_FI_DEV_XID_ERRORS", "0x30 79x5 0x5", Hostname="gpu-2", gpu="3")],
        "32m",
        [
            alert(
                "GpuHealthCheckFailed",
                "critical",
                "A GPU node failed its health check (DCGM diagnostics or an XID error): it is drained and "
                "replaced, and its job resumes from its last checkpoint",
                Hostname="gpu-2",
            )
        ],
        ["20m", "39m"],
    ),
    case(
        "AcceleratorsIdleNvidia",
        [
            series("DCGM_FI_DEV_GPU_UTIL", "90x10 2x40 90x10", Hostname="gpu-1", gpu="0"),
            series("DCGM_FI_DEV_GPU_UTIL", "90x10 4x40 90x10", Hostname="gpu-1", gpu="1"),
        ],
        "45m",
        [
            alert(
                "AcceleratorsIdleNvidia",
                "warning",
                "A node's accelerators have been under 10% busy for 30m while the node bills",
                Hostname="gpu-1",
            )
        ],
        ["30m", "58m"],
    ),
    case(
        "AcceleratorsIdleAwsNeuron",
        [series("neuroncore_utilization_ratio", "80x10 1x40", instance="trn-1", neuroncore="0")],
        "45m",
        [
            alert(
                "AcceleratorsIdleAwsNeuron",
                "warning",
                "A node's accelerators have been under 10% busy for 30m while the node bills",
                instance="trn-1",
            )
        ],
        ["30m"],
    ),
    case(
        "AcceleratorsIdleGoogleTpu",
        [series("kubernetes_io:node_accelerator_duty_cycle", "70x10 0x40", node_name="tpu-1", accelerator_id="0")],
        "45m",
        [
            alert(
                "AcceleratorsIdleGoogleTpu",
                "warning",
                "A node's accelerators have been under 10% busy for 30m while the node bills",
                node_name="tpu-1",
            )
        ],
        ["30m"],
    ),
]


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("alerts") / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule_groups(AlertSpec(), VENDORS, TRAINING_POOLS)}))
    return path


def test_the_rules_parse(rules_file: Path) -> None:
    done = subprocess.run([promtool(), "check", "rules", str(rules_file)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 12 rules found" in done.stdout


def test_every_alert_fires_on_its_series_and_resolves(rules_file: Path) -> None:
    names = {r["alert"] for g in rule_groups(AlertSpec(), VENDORS, TRAINING_POOLS) for r in g["rules"]}
    assert names == {c["alert_rule_test"][0]["alertname"] for c in CASES}, "every alert has a case"
    tests = rules_file.with_name("tests.yaml")
    tests.write_text(yaml.safe_dump({"rule_files": [rules_file.name], "evaluation_interval": "1m", "tests": CASES}))
    done = subprocess.run([promtool(), "test", "rules", str(tests)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_thresholds_come_from_the_spec(rules_file: Path) -> None:
    """A tighter objective in the stack file makes the same series fire earlier."""
    strict = AlertSpec(training_stalled_minutes=5, serving_p99_seconds=2)
    path = rules_file.with_name("strict.yaml")
    path.write_text(yaml.safe_dump({"groups": rule_groups(strict, VENDORS, TRAINING_POOLS)}))
    stalled = case(
        "TrainingStalled",
        [series("meshstack_train_last_step_timestamp_seconds", "0+60x10 600x30", **JOB)],
        "17m",
        [
            alert(
                "TrainingStalled", "critical", "Training job pretrain (process 0) finished no step for 5 minutes", **JOB
            )
        ],
        ["15m"],
    )
    tests = path.with_name("strict-tests.yaml")
    tests.write_text(yaml.safe_dump({"rule_files": [path.name], "evaluation_interval": "1m", "tests": [stalled]}))
    done = subprocess.run([promtool(), "test", "rules", str(tests)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dashboards_show_node_repair() -> None:
    """Both clouds' dashboards draw the same sections: node health and repair on every cluster, each GPU's
    XID errors where a pool carries NVIDIA GPUs."""
    import json

    from meshstack.components.gcp.dashboard import dashboard_json
    from meshstack.components.k8s.monitoring import dashboard_config_map

    grafana = json.loads(dashboard_config_map({"nvidia"})["data"]["meshstack.json"])
    titles = [p["title"] for p in grafana["panels"]]
    assert "Node health and repair" in titles and "Nodes lost in the last hour by pool" in titles
    assert "GPU XID errors" in titles
    tiles = [t["widget"]["title"] for t in json.loads(dashboard_json("x", {"google-tpu"}))["mosaicLayout"]["tiles"]]
    assert "Node health and repair" in tiles and "GPU XID errors (xid)" not in tiles
