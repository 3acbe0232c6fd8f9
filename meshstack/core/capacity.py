"""What each workload needs of its pool, counted once.

Validation checks these numbers against the pools, queues, reservations and budget; the program
hands them to the pools so the cost estimate can price the stack while its workloads run; the
placement of each pod reads the same devices-per-pod figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from meshstack.core.catalog import Catalog
from meshstack.core.nodes import pods_per_node
from meshstack.core.spec.cluster import ClusterSpec
from meshstack.core.spec.pool import NodePool
from meshstack.core.spec.queues import QueueSpec
from meshstack.core.spec.workload import InferenceWorkload, TrainingWorkload

Workload = TrainingWorkload | InferenceWorkload


def devices_per_pod(workload: Workload, pool: NodePool) -> int:
    """A TPU host's every chip; a training process's share (the whole node by default); one per replica."""
    per_node = pool.accelerators_per_node or 0
    if pool.topology is not None:
        return per_node
    if isinstance(workload, TrainingWorkload):
        return (workload.devices_per_process or per_node) if per_node else 0
    return workload.devices_per_replica if workload.devices_per_replica is not None else min(per_node, 1)


@dataclass(frozen=True)
class Demand:
    """One workload at full size: its pods (training processes, or serving replicas at max), each
    taking `devices_per_pod` accelerators, packed `pods_per_node` to a node of its pool."""

    workload: str
    pool: NodePool
    pods: int
    devices_per_pod: int
    pods_per_node: int

    @property
    def nodes(self) -> int:
        return math.ceil(self.pods / self.pods_per_node)

    @property
    def accelerators(self) -> int:
        return self.pods * self.devices_per_pod

    def describe(self) -> str:
        """'32 h100 (4 x 8)', or for CPU pods '3 nodes of pool system (6 pods)'."""
        if self.devices_per_pod:
            return f"{self.accelerators} {self.pool.accelerator} ({self.pods} x {self.devices_per_pod})"
        return f"{self.nodes} nodes of pool '{self.pool.name}' ({self.pods} pods)"

    def describe_nodes(self, nodes: int) -> str:
        """A node count in the units the demand is described in."""
        per_node = self.pool.accelerators_per_node or 0
        if self.devices_per_pod:
            return f"{nodes * per_node} {self.pool.accelerator} ({nodes} nodes of pool '{self.pool.name}')"
        return f"{nodes} nodes of pool '{self.pool.name}'"


def demand(workload: Workload, pool: NodePool, catalog: Catalog) -> Demand:
    devices = devices_per_pod(workload, pool)
    if pool.topology is not None:
        per_node = 1  # a TPU host runs one process, which takes all its chips
    else:
        vcpus = catalog.instance_types[pool.sizing_type(catalog)].vcpus
        per_node = pods_per_node(pool.accelerators_per_node or 0, vcpus, devices)
    pods = workload.processes if isinstance(workload, TrainingWorkload) else workload.max_replicas
    return Demand(workload.name, pool, pods, devices, per_node)


def running_nodes(pool: NodePool, demands: list[Demand]) -> int:
    """Nodes per slice (per pool off TPUs) while the pool's workloads all run: at least min_nodes,
    at most max_nodes."""
    needed = math.ceil(sum(d.nodes for d in demands) / pool.slices)
    return min(pool.max_nodes, max(pool.min_nodes, needed))


def queue_of(cluster: ClusterSpec, workload: TrainingWorkload) -> QueueSpec | None:
    """The queue a job is sent to: the one it names, else the cluster's only one; None if it names none
    of several or one that does not exist."""
    queues = cluster.queue_specs
    if workload.queue is None:
        return queues[0] if len(queues) == 1 else None
    return next((q for q in queues if q.name == workload.queue), None)


def admissible_nodes(cluster: ClusterSpec, queue: QueueSpec, pool: NodePool) -> int:
    """The most nodes of `pool` a job in `queue` can ever be given: its own quota, plus what the
    other queues of its cohort could lend when idle (Kueue lends unused quota within a cohort)."""
    own = cluster.quota_nodes(queue, pool)
    if queue.cohort is None:
        return own
    lent = sum(cluster.quota_nodes(q, pool) for q in cluster.queue_specs if q.cohort == queue.cohort and q is not queue)
    return min(own + lent, pool.capacity_nodes)
