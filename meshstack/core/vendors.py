"""What an accelerator vendor implies for the nodes, add-ons, telemetry and programs that carry it, one
entry per vendor: a vendor added here (and the catalog's accelerators that name it) reaches every place
that reads one. The catalog refuses an accelerator whose vendor has no entry, so a missing one is an
error at validation, not a KeyError inside the program run.
"""

from __future__ import annotations

from dataclasses import dataclass

# The metrics each vendor's telemetry exports, as the dashboards and alerts query them.
DCGM_UTILIZATION = "DCGM_FI_DEV_GPU_UTIL"  # percent (NVIDIA's dcgm-exporter; GKE's DCGM component)
DCGM_XID_ERRORS = "DCGM_FI_DEV_XID_ERRORS"  # the last XID error a GPU raised (0: none)
NEURON_UTILIZATION = "neuroncore_utilization_ratio"  # percent (neuron-monitor)
TPU_DUTY_CYCLE = "kubernetes_io:node_accelerator_duty_cycle"  # percent (GKE system metrics)


@dataclass(frozen=True)
class Chart:
    """A dashboard panel: its title, PromQL and unit."""

    title: str
    expr: str
    unit: str


@dataclass(frozen=True)
class HealthAlert:
    """A critical alert on a node whose accelerators fail: the cluster's accelerator health condition
    false, or `expr`, the vendor's own signal."""

    name: str
    expr: str
    summary: str


@dataclass(frozen=True, kw_only=True)
class Vendor:
    """Every field is required, so an entry that leaves one out fails when the module loads."""

    resource: str | None  # the extended resource its pods request and its nodes are tainted with
    device_plugin: str | None  # the chart that advertises `resource` where meshstack installs plugins (EKS)
    telemetry: str | None  # the exporter chart beside meshstack's own Prometheus (EKS)
    gke_monitoring: str | None  # GKE's cluster monitoring component for it (GKE installs the exporter)
    eks_ami_type: str | None  # the EKS-optimized AL2023 image its managed nodes boot; None: not on EKS
    utilisation: Chart | None  # how busy its nodes' accelerators are: charted, and alerted on when low
    health: Chart | None  # its own health signal on the repair dashboard, beside the node conditions
    health_alert: HealthAlert | None  # the alert that names a failing node; None: the node conditions' alone
    maxtext_hardware: str | None  # MaxText's `hardware`; None: MaxText does not run on it
    maxtext_keys: dict[str, str]  # the MaxText keys it needs beside the job's own (overridable by them)
    maxtext_coordinator_env: bool  # MaxText's start-up on it reads the coordinator and node count from env
    vllm_image: str | None  # which of vLLM's published images serves on it; None: vLLM does not


VENDORS: dict[str, Vendor] = {
    "nvidia": Vendor(
        resource="nvidia.com/gpu",
        device_plugin="nvidia-device-plugin",
        telemetry="dcgm-exporter",
        gke_monitoring="DCGM",
        eks_ami_type="AL2023_x86_64_NVIDIA",
        utilisation=Chart("GPU utilisation", f"avg by (Hostname) ({DCGM_UTILIZATION})", "%"),
        health=Chart("GPU XID errors", f"max by (Hostname) ({DCGM_XID_ERRORS})", "xid"),
        health_alert=HealthAlert(
            "GpuHealthCheckFailed",
            f"max by (Hostname) ({DCGM_XID_ERRORS}) > 0",
            "A GPU node failed its health check (DCGM diagnostics or an XID error): "
            "it is drained and replaced, and its job resumes from its last checkpoint",
        ),
        maxtext_hardware="gpu",
        # What MaxText's GPU recipes pass (src/maxtext/configs/gpu/models/*.yml): overridable in `maxtext`.
        maxtext_keys={"attention": "cudnn_flash_te"},
        # max_utils.initialize_jax_for_gpu reads JAX_COORDINATOR_IP/PORT and NNODES.
        maxtext_coordinator_env=True,
        vllm_image="gpu",
    ),
    "aws-neuron": Vendor(
        resource="aws.amazon.com/neuron",
        # neuron-monitor rides in the device plugin's chart: no exporter of its own.
        device_plugin="neuron-device-plugin",
        telemetry=None,
        gke_monitoring=None,
        eks_ami_type="AL2023_x86_64_NEURON",
        utilisation=Chart("NeuronCore utilisation", f"avg by (instance) ({NEURON_UTILIZATION})", "%"),
        health=None,
        health_alert=None,
        maxtext_hardware=None,
        maxtext_keys={},
        maxtext_coordinator_env=False,
        vllm_image=None,
    ),
    "google-tpu": Vendor(
        resource="google.com/tpu",
        device_plugin=None,
        telemetry=None,
        gke_monitoring=None,
        eks_ami_type=None,
        utilisation=Chart("TPU duty cycle", f"avg by (node_name) ({TPU_DUTY_CYCLE})", "%"),
        health=None,
        health_alert=None,
        maxtext_hardware="tpu",
        maxtext_keys={},
        maxtext_coordinator_env=False,
        vllm_image="tpu",
    ),
    "none": Vendor(
        resource=None,
        device_plugin=None,
        telemetry=None,
        gke_monitoring=None,
        eks_ami_type="AL2023_x86_64_STANDARD",
        utilisation=None,
        health=None,
        health_alert=None,
        maxtext_hardware="cpu",
        maxtext_keys={},
        maxtext_coordinator_env=False,
        vllm_image=None,
    ),
}
