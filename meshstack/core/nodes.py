"""What a node says about itself in Kubernetes, the same on every cloud: labels to select it, taints to reserve it."""

from __future__ import annotations

from meshstack.core.catalog import Accelerator
from meshstack.core.spec import NodePool

LABEL_POOL = "meshstack.io/node-pool"
LABEL_ACCELERATOR = "meshstack.io/accelerator"
LABEL_ACCELERATOR_COUNT = "meshstack.io/accelerator-count"


def node_labels(pool: NodePool) -> dict[str, str]:
    """What a workload selects on to land on this pool."""
    return {
        **pool.labels,
        LABEL_POOL: pool.name,
        LABEL_ACCELERATOR: pool.accelerator,
        LABEL_ACCELERATOR_COUNT: str(pool.accelerators_per_node),
    }


def node_taints(pool: NodePool, accelerator: Accelerator) -> list[dict[str, str]]:
    """Accelerator nodes repel pods that do not ask for the accelerator, so CPU work cannot strand them."""
    taints = [{"key": t.key, "value": t.value, "effect": t.effect} for t in pool.taints]
    if accelerator.resource and all(t["key"] != accelerator.resource for t in taints):
        taints.append({"key": accelerator.resource, "value": "present", "effect": "NoSchedule"})
    return taints
