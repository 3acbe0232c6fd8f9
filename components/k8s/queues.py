"""Kueue's objects for one cluster: a ResourceFlavor per node pool, a ClusterQueue per queue with
quotas from the pools' sizes, a LocalQueue in each namespace that sends jobs to it, and the
workload priority classes.

The bodies are plain dicts, built by pure functions, so the admission model in the tests reads
exactly what the cluster would receive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshstack.core.nodes import NodePoolArgs, node_taints, pool_selector

KUEUE_API = "kueue.x-k8s.io/v1beta1"
EFA_RESOURCE = "vpc.amazonaws.com/efa"


@dataclass(frozen=True)
class QueueArgs:
    """A Kueue ClusterQueue: how much of the cluster's pools the jobs sent to it may hold at once."""

    name: str
    """The ClusterQueue's name."""
    nodes: Mapping[str, int]
    """Nominal quota in nodes per pool name (hosts of all slices for TPUs); pools not named get none."""
    namespaces: Sequence[str] = ()
    """Namespaces that get a LocalQueue of its name, the only ones it admits from; none: any LocalQueue."""
    cohort: str | None = None
    """Queues of one cohort lend each other unused quota."""


@dataclass(frozen=True)
class QueueNeeds:
    queues: Sequence[QueueArgs] = ()
    priorities: Mapping[str, int] = field(default_factory=dict)


def pool_resources(pool: NodePoolArgs) -> dict[str, float]:
    """What one node of the pool offers Kueue's accounting: its CPUs, memory (GiB), accelerators and
    EFA interfaces. Every resource a pod requests must be covered, or Kueue never admits it."""
    offered: dict[str, float] = {"cpu": pool.instance.vcpus, "memory": pool.instance.memory_gib}
    if pool.accelerator.resource and pool.accelerators_per_node:
        offered[pool.accelerator.resource] = pool.accelerators_per_node
    if pool.efa:
        offered[EFA_RESOURCE] = pool.instance.efa_interfaces
    return offered


def _quantity(resource: str, amount: float) -> str:
    return f"{round(amount)}Gi" if resource == "memory" else str(round(amount))


def resource_flavor(pool: NodePoolArgs) -> dict[str, Any]:
    """Admitting a job to this flavor means its pods land on the pool's nodes: they select its label
    and tolerate its taints, which Kueue checks before admission."""
    spec: dict[str, Any] = {"nodeLabels": pool_selector(pool)}
    taints = node_taints(pool)
    if taints:
        spec["nodeTaints"] = taints
    return {"apiVersion": KUEUE_API, "kind": "ResourceFlavor", "metadata": {"name": pool.name}, "spec": spec}


def cluster_queue(queue: QueueArgs, pools: Sequence[NodePoolArgs]) -> dict[str, Any]:
    """One resource group covering every resource of every pool (a resource may sit in one group
    only), each pool a flavor with its quota; resources a pool lacks get a quota of 0."""
    offered = {pool.name: pool_resources(pool) for pool in pools}
    covered = sorted({r for resources in offered.values() for r in resources}, key=_resource_order)
    flavors = []
    for pool in pools:
        nodes = queue.nodes.get(pool.name, 0)
        flavors.append(
            {
                "name": pool.name,
                "resources": [
                    {"name": r, "nominalQuota": _quantity(r, offered[pool.name].get(r, 0) * nodes)} for r in covered
                ],
            }
        )
    # Only the queue's namespaces (where its LocalQueues are) may send to it; a queue with none (a
    # cluster without workloads) takes any LocalQueue someone creates.
    selector: dict[str, Any] = {}
    if queue.namespaces:
        selector["matchExpressions"] = [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": sorted(queue.namespaces)}
        ]
    spec: dict[str, Any] = {
        "namespaceSelector": selector,
        "queueingStrategy": "BestEffortFIFO",
        "preemption": {"withinClusterQueue": "LowerPriority", "reclaimWithinCohort": "Any"},
        "resourceGroups": [{"coveredResources": covered, "flavors": flavors}],
    }
    if queue.cohort is not None:
        spec["cohort"] = queue.cohort
    return {"apiVersion": KUEUE_API, "kind": "ClusterQueue", "metadata": {"name": queue.name}, "spec": spec}


def _resource_order(resource: str) -> tuple[int, str]:
    return ({"cpu": 0, "memory": 1}.get(resource, 2), resource)


def local_queue(queue: QueueArgs, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": KUEUE_API,
        "kind": "LocalQueue",
        "metadata": {"name": queue.name, "namespace": namespace},
        "spec": {"clusterQueue": queue.name},
    }


def priority_class(name: str, value: int) -> dict[str, Any]:
    return {
        "apiVersion": KUEUE_API,
        "kind": "WorkloadPriorityClass",
        "metadata": {"name": name},
        "value": value,
        "description": f"meshstack priority '{name}': admitted before lower values, may preempt them",
    }


def queue_objects(needs: QueueNeeds, pools: Sequence[NodePoolArgs]) -> list[dict[str, Any]]:
    """Everything Kueue needs, in the order the API server can take it."""
    objects = [resource_flavor(pool) for pool in pools]
    objects += [cluster_queue(queue, pools) for queue in needs.queues]
    objects += [local_queue(queue, ns) for queue in needs.queues for ns in sorted(queue.namespaces)]
    objects += [priority_class(name, value) for name, value in sorted(needs.priorities.items())]
    return objects
