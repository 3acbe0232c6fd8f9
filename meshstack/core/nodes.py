"""A node pool as the components build it, and what its nodes say about themselves in Kubernetes.

`NodePoolArgs` is the spec's pool with its catalog entries looked up once: the EKS and GKE
components, the node labels and taints and each workload's placement all read this one value.
It holds plain data, so a Pulumi program that does not use meshstack's stack spec can build one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from meshstack.core.catalog import Accelerator, InstanceType
from meshstack.core.vocabulary import FallbackMarket, Market, TaintEffect

LABEL_POOL = "meshstack.io/node-pool"
LABEL_ACCELERATOR = "meshstack.io/accelerator"
LABEL_ACCELERATOR_COUNT = "meshstack.io/accelerator-count"
# GKE binds a node pool it did not create to a custom compute class by this label and a NoSchedule taint
# of the same key and value on the pool, and a pod asks for the class with a nodeSelector on the label
# (GKE "About custom ComputeClasses"; google/skills gke-compute-classes @ 1af77752, read 2026-12-07).
LABEL_COMPUTE_CLASS = "cloud.google.com/compute-class"
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
    """The pool's name in the spec: the node label workloads select and the prefix of its node groups."""
    accelerator_name: str
    """The catalog accelerator it carries (h100, tpu-v5p, cpu), as node labels and queue flavors name it."""
    accelerator: Accelerator
    """That accelerator's catalog entry: its vendor, extended resource and peaks."""
    instance_type: str
    """The first of the types it launches (the one priced); a TPU pool's host machine type."""
    instance: InstanceType
    """The smallest of its types: a pod sized for it fits every node the pool may launch."""
    instance_types: Sequence[str] = ()
    """Every type the pool may launch, in the order tried; empty means instance_type alone."""
    accelerators_per_node: int
    """Accelerators on each node (chips per host for TPUs), the same for every listed type."""
    max_nodes: int
    """The most nodes the pool grows to (per slice for TPUs; per market group on a fallback)."""
    min_nodes: int = 0
    """Nodes it keeps however idle: the floor the autoscaler never goes below."""
    desired_nodes: int = 0
    """Nodes it starts with; later changes are the autoscaler's."""
    market: Market = "on-demand"
    """Where its nodes come from first: on-demand, spot, a capacity block or a reservation."""
    fallback: Sequence[FallbackMarket] = ()
    """Markets tried after `market`, in order, when it has no capacity."""
    karpenter: bool = False
    """Karpenter launches its nodes (a NodePool and EC2NodeClass), not a managed node group."""
    reservation_id: str | None = None
    """The capacity block or reservation its first market launches into (AWS cr-..., GCP its name)."""
    zone: str | None = None
    """Where its nodes run: an AWS zone id or a GCP zone; None means wherever the cluster's subnets are."""
    efa: bool = False
    """One EFA interface per network card of the type, and the EFA device plugin on its nodes."""
    placement_group: bool = False
    """Launch into a cluster placement group (one AZ)."""
    root_volume_gib: int = 200
    """Each node's root disk, GiB."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Node labels of the spec's own, beside meshstack's."""
    taints: Sequence[Taint] = ()
    """Node taints of the spec's own, beside the accelerator's (and a compute class's)."""
    tpu: TpuSlice | None = None
    """A TPU pool's slice shape; None for GPU and CPU pools."""
    gpu_type: str | None = None
    """GKE: the guest accelerator type of the first listed type (nvidia-h100-80gb)."""
    gpu_types: Mapping[str, str] = field(default_factory=dict)
    """GKE: each listed type's guest accelerator type where it is not gpu_type (a3-megagpu-8g's H100 Mega)."""
    compute_class: str | None = None
    """GKE: the custom compute class that orders the pool's node pools (several types, a market fallback)."""
    workload_nodes: int = 0
    """Nodes (per slice) the stack's own workloads need at full size: what the running cost counts."""

    @property
    def markets(self) -> list[str]:
        """The market order: `market`, then its fallbacks."""
        return [self.market, *self.fallback]


def launch_types(pool: NodePoolArgs) -> list[str]:
    """The instance types the pool may launch, in the order tried."""
    return list(pool.instance_types) or [pool.instance_type]


def market_variants(pool: NodePoolArgs) -> list[NodePoolArgs]:
    """The pool as it runs in each market of its order, first market first. A fallback market's nodes
    start at none and come only when the markets before it cannot launch: the pool's floor (min_nodes),
    its workload nodes (priced) and its reservation stay with the first market."""
    return [pool] + [
        dataclasses.replace(
            pool,
            market=market,
            fallback=pool.fallback[rank + 1 :],
            reservation_id=None,
            min_nodes=0,
            desired_nodes=0,
            workload_nodes=0,
        )
        for rank, market in enumerate(pool.fallback)
    ]


def pods_per_node(accelerators_per_node: int, vcpus: int, devices: int) -> int:
    """How many pods taking `devices` accelerators each share one node; on CPU, one per CPU_POD_VCPUS."""
    pods = accelerators_per_node // devices if devices else vcpus // CPU_POD_VCPUS
    return max(pods, 1)


def pool_selector(pool: NodePoolArgs) -> dict[str, str]:
    """The node labels that pick the pool's nodes: its name, and on GKE its compute class, which the
    autoscaler follows only for pods that ask for it."""
    return {LABEL_POOL: pool.name, **({LABEL_COMPUTE_CLASS: pool.compute_class} if pool.compute_class else {})}


def node_labels(pool: NodePoolArgs) -> dict[str, str]:
    """What a workload selects on to land on this pool."""
    return {
        **pool.labels,
        LABEL_POOL: pool.name,
        LABEL_ACCELERATOR: pool.accelerator_name,
        LABEL_ACCELERATOR_COUNT: str(pool.accelerators_per_node),
        **({LABEL_COMPUTE_CLASS: pool.compute_class} if pool.compute_class else {}),
    }


def compute_class_taints(pool: NodePoolArgs) -> list[dict[str, str]]:
    """A node pool GKE did not create serves a compute class only with this taint (and the label): pods
    that do not ask for the class stay off it."""
    if not pool.compute_class:
        return []
    return [{"key": LABEL_COMPUTE_CLASS, "value": pool.compute_class, "effect": "NoSchedule"}]


def node_taints(pool: NodePoolArgs) -> list[dict[str, str]]:
    """Accelerator nodes repel pods that do not ask for the accelerator, so CPU work cannot strand them."""
    taints = [{"key": t.key, "value": t.value, "effect": t.effect} for t in pool.taints]
    taints += compute_class_taints(pool)
    resource = pool.accelerator.resource
    if resource and all(t["key"] != resource for t in taints):
        taints.append({"key": resource, "value": "present", "effect": "NoSchedule"})
    if pool.karpenter and not taints:
        # Karpenter launches a node for any pending pod a NodePool admits: an untainted CPU NodePool would
        # take the add-ons' pods that the managed system pool is there for.
        taints.append({"key": LABEL_POOL, "value": pool.name, "effect": "NoSchedule"})
    return taints
