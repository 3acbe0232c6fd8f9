"""What every meshstack pod shares: placement on its pool, accelerator requests, security, volumes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshstack.core.nodes import NodePoolArgs, node_taints, pods_per_node, pool_selector

EFA_RESOURCE = "vpc.amazonaws.com/efa"
TPU_ACCELERATOR_LABEL = "cloud.google.com/gke-tpu-accelerator"
TPU_TOPOLOGY_LABEL = "cloud.google.com/gke-tpu-topology"
RUN_AS_USER = 1000
SYSTEM_CPU_RESERVE = 2  # vCPUs left on each node for the kubelet, CNI and device plugins
SYSTEM_MEMORY_SHARE = 0.85


@dataclass(frozen=True)
class Placement:
    """One pod's share of a node of its pool: `devices` accelerators, one of `pods_per_node` pods."""

    pool: NodePoolArgs
    devices: int
    pods_per_node: int

    @classmethod
    def for_devices(cls, pool: NodePoolArgs, devices: int) -> Placement:
        return cls(pool, devices, pods_per_node(pool.accelerators_per_node, pool.instance.vcpus, devices))

    def node_selector(self) -> dict[str, str]:
        selector = pool_selector(self.pool)
        tpu = self.pool.tpu
        if tpu is not None:
            selector[TPU_ACCELERATOR_LABEL] = tpu.gke_accelerator
            selector[TPU_TOPOLOGY_LABEL] = tpu.topology
        return selector

    def tolerations(self) -> list[dict[str, str]]:
        return [
            {"key": t["key"], "operator": "Equal", "value": t["value"], "effect": t["effect"]}
            for t in node_taints(self.pool)
        ]

    def efa_interfaces(self) -> int:
        return self.pool.instance.efa_interfaces // self.pods_per_node if self.pool.efa else 0

    def resources(self) -> dict[str, dict[str, str]]:
        """Requests equal limits (Guaranteed QoS): a training pod must not be squeezed by a neighbour."""
        instance = self.pool.instance
        cpu = max((instance.vcpus - SYSTEM_CPU_RESERVE) // self.pods_per_node, 1)
        memory = max(int(instance.memory_gib * SYSTEM_MEMORY_SHARE / self.pods_per_node), 1)
        amounts = {"cpu": str(cpu), "memory": f"{memory}Gi"}
        resource = self.pool.accelerator.resource
        if resource and self.devices:
            amounts[resource] = str(self.devices)
        if self.efa_interfaces():
            amounts[EFA_RESOURCE] = str(self.efa_interfaces())
        return {"requests": dict(amounts), "limits": dict(amounts)}

    def environment(self) -> list[dict[str, str]]:
        if not self.pool.efa:
            return []
        return [
            {"name": "FI_PROVIDER", "value": "efa"},
            {"name": "FI_EFA_USE_DEVICE_RDMA", "value": "1"},
            {"name": "NCCL_SOCKET_IFNAME", "value": "^lo,docker"},
        ]


def security_context() -> dict[str, Any]:
    """What the Pod Security Standard `restricted` asks, plus a read-only root.

    EFA pods add no capability: pinning memory for RDMA is bounded by RLIMIT_MEMLOCK,
    which the EFA pools' nodes raise for every container (components/aws/node_group.py).
    IPC_LOCK would not help anyway: a container running as a non-root user has an
    empty effective capability set.
    """
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def scratch_volumes() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """/tmp for the read-only root file system, and a memory-backed /dev/shm for collectives."""
    volumes = [{"name": "tmp", "emptyDir": {}}, {"name": "shm", "emptyDir": {"medium": "Memory"}}]
    mounts = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "shm", "mountPath": "/dev/shm"}]
    return volumes, mounts


def claim_volumes(claims: Mapping[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Volumes for persistent volume claims, keyed by mount path."""
    volumes, mounts = [], []
    for i, (path, claim) in enumerate(sorted(claims.items())):
        volumes.append({"name": f"data-{i}", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": f"data-{i}", "mountPath": path})
    return volumes, mounts
