"""A node pool as the components build it, and what its nodes say about themselves in Kubernetes.

`NodePoolArgs` is the spec's pool with its catalog entries looked up once: the EKS and GKE
components, the node labels and taints and each workload's placement all read this one value.
It holds plain data, so a Pulumi program that does not use meshstack's stack spec can build one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from meshstack.core.catalog import Accelerator, InstanceType
from meshstack.core.vocabulary import TaintEffect

LABEL_POOL = "meshstack.io/node-pool"
LABEL_ACCELERATOR = "meshstack.io/accelerator"
LABEL_ACCELERATOR_COUNT = "meshstack.io/accelerator-count"
CPU_POD_VCPUS = 4  # what a pod on a CPU pool is sized for: an inference replica without accelerators


@dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: TaintEffect = "NoSchedule"


@dataclass(frozen=True)
class TpuSlice:
    """A TPU pool's slice shape and the value GKE labels its nodes with."""

    gke_accelerator: str
    topology: str
    hosts: int
    slices: int = 1


@dataclass(frozen=True, kw_only=True)
class NodePoolArgs:
    """One pool of identical nodes. Node counts are per pool (per slice for TPUs)."""

    name: str
    accelerator_name: str
    accelerator: Accelerator
    instance_type: str
    instance: InstanceType  # the smallest of instance_types: what a pod is sized for fits every node
    instance_types: Sequence[str] = ()  # every type the pool may launch, in the order tried; () is instance_type
    accelerators_per_node: int
    max_nodes: int
    min_nodes: int = 0
    desired_nodes: int = 0
    market: Literal["on-demand", "spot", "capacity-block", "reservation"] = "on-demand"
    fallback: Sequence[Literal["spot", "on-demand"]] = ()  # markets tried after `market`, in order
    karpenter: bool = False  # Karpenter launches the pool's nodes (a NodePool), not a managed node group
    reservation_id: str | None = None
    zone: str | None = None  # AWS a zone id, GCP a zone: where the pool's nodes run (None: the cluster's)
    efa: bool = False
    placement_group: bool = False
    root_volume_gib: int = 200
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: Sequence[Taint] = ()
    tpu: TpuSlice | None = None
    gpu_type: str | None = None  # GKE: the guest accelerator type of a GPU pool
    workload_nodes: int = 0  # nodes (per slice) the stack's own workloads need at full size: the running cost


def launch_types(pool: NodePoolArgs) -> list[str]:
    """The instance types the pool may launch, in the order tried."""
    return list(pool.instance_types) or [pool.instance_type]


def pods_per_node(accelerators_per_node: int, vcpus: int, devices: int) -> int:
    """How many pods taking `devices` accelerators each share one node; on CPU, one per CPU_POD_VCPUS."""
    pods = accelerators_per_node // devices if devices else vcpus // CPU_POD_VCPUS
    return max(pods, 1)


def node_labels(pool: NodePoolArgs) -> dict[str, str]:
    """What a workload selects on to land on this pool."""
    return {
        **pool.labels,
        LABEL_POOL: pool.name,
        LABEL_ACCELERATOR: pool.accelerator_name,
        LABEL_ACCELERATOR_COUNT: str(pool.accelerators_per_node),
    }


def node_taints(pool: NodePoolArgs) -> list[dict[str, str]]:
    """Accelerator nodes repel pods that do not ask for the accelerator, so CPU work cannot strand them."""
    taints = [{"key": t.key, "value": t.value, "effect": t.effect} for t in pool.taints]
    resource = pool.accelerator.resource
    if resource and all(t["key"] != resource for t in taints):
        taints.append({"key": resource, "value": "present", "effect": "NoSchedule"})
    if pool.karpenter and not taints:
        # Karpenter launches a node for any pending pod a NodePool admits: an untainted CPU NodePool would
        # take the add-ons' pods that the managed system pool is there for.
        taints.append({"key": LABEL_POOL, "value": pool.name, "effect": "NoSchedule"})
    return taints
