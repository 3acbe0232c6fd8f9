"""What one cloud's platform module hands the program: the stack's clusters and storage, seen the same way
whichever cloud built them. Each cloud has a module components/<cloud>/platform.py with

    def platform(spec: StackSpec, pools: Mapping[tuple[str, str], NodePoolArgs]) -> Platform

that declares its network, storage, clusters and identities; the program loads it by the spec's cloud.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from meshstack.components.k8s.addons import AddonNeeds, ClusterAddons
from meshstack.components.k8s.queues import QueueArgs, QueueNeeds
from meshstack.core.capacity import queue_of
from meshstack.core.spec import InferenceWorkload, StackSpec, TrainingWorkload
from meshstack.workloads.k8s.metrics import MetricsBackend
from meshstack.workloads.k8s.volumes import FileSystemRef

# (workload, namespace, service account, (bucket name, prefix) scopes, read only) -> the service
# account's annotations: an identity that may use the objects under those prefixes and nothing else.
Grant = Callable[[str, str, str, Sequence[tuple[str, str]], bool], Mapping[str, pulumi.Input[str]]]


@dataclass(frozen=True)
class ClusterHandle:
    """What a workload needs of the cluster it runs on: its provider, add-ons to wait for, identities,
    and the Prometheus its services are scraped by and scaled on."""

    provider: k8s.Provider
    addons: ClusterAddons
    grant: Grant
    metrics: MetricsBackend


@dataclass(frozen=True)
class StorageTargets:
    """The stack's buckets by spec name, the URI scheme that reaches them, and its mountable file systems
    by (kind, name) as a workload's mounts name them."""

    scheme: str
    buckets: Mapping[str, pulumi.Output[str]]
    filesystems: Mapping[tuple[str, str], FileSystemRef]

    def uri(self, bucket: str, prefix: str = "") -> pulumi.Output[str]:
        prefix = prefix.strip("/")
        return self.buckets[bucket].apply(
            lambda b: f"{self.scheme}://{b}/{prefix}" if prefix else f"{self.scheme}://{b}"
        )


@dataclass(frozen=True)
class Platform:
    storage: StorageTargets
    clusters: Mapping[str, ClusterHandle]
    exports: Mapping[str, Any] = field(default_factory=dict)


def addon_needs(spec: StackSpec, cluster: str) -> AddonNeeds:
    """The file-system drivers the stack's storage needs, the namespaces of the cluster's workloads,
    its Kueue queues and whether any inference service needs KEDA.

    Each queue is open to (and has a LocalQueue in) the namespaces of the jobs the stack sends to it.
    A queue no job of the stack names (one kept for jobs people submit, such as prod-aws'
    `experiments`) is open to every workload namespace of the cluster: a queue without a LocalQueue
    could take no job at all."""
    declared = next(c for c in spec.clusters if c.name == cluster)
    workloads = [w for w in spec.workloads if w.cluster == cluster]
    namespaces = tuple(sorted({w.namespace for w in workloads}))
    queued: dict[str, set[str]] = {}
    for w in workloads:
        queue = queue_of(declared, w) if isinstance(w, TrainingWorkload) else None
        if queue is not None:
            queued.setdefault(queue.name, set()).add(w.namespace)
    queues = [
        QueueArgs(
            q.name,
            {p.name: declared.quota_nodes(q, p) for p in declared.node_pools},
            tuple(sorted(queued.get(q.name) or namespaces)),
            q.cohort,
        )
        for q in declared.queue_specs
    ]
    return AddonNeeds(
        lustre=bool(spec.storage.lustre),
        efs=bool(spec.storage.efs),
        namespaces=namespaces,
        queues=QueueNeeds(queues, dict(declared.priorities)),
        scaled_services=any(isinstance(w, InferenceWorkload) for w in workloads),
        alerts=spec.alerts,
        training_pools=tuple(sorted({w.node_pool for w in workloads if isinstance(w, TrainingWorkload)})),
    )
