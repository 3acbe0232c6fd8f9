"""The spec's node pools turned into component arguments, each looked up in the catalog exactly once."""

from __future__ import annotations

from meshstack.core import clouds
from meshstack.core.capacity import Demand, running_nodes
from meshstack.core.catalog import Catalog
from meshstack.core.nodes import NodePoolArgs, Taint, TpuSlice
from meshstack.core.spec import NodePool, StackSpec


def pool_args(pool: NodePool, catalog: Catalog, workload_nodes: int = 0, karpenter: bool = False) -> NodePoolArgs:
    """The validated spec has already resolved the instance types and per-node count."""
    types = pool.instance_types or [str(pool.instance_type)]
    gpu_types = {t: catalog.instance_types[t].gpu_type or catalog.gpu_types.get(pool.accelerator) for t in types}
    gpu_type = gpu_types[types[0]]
    # One node pool of each type in each market, where the cloud tries them in order (a GKE compute class).
    ordered = clouds.get(catalog.cloud).orders_fallback and (len(types) > 1 or bool(pool.fallback))
    tpu = None
    if catalog.is_tpu(pool.accelerator):
        generation = catalog.tpus[pool.accelerator]
        shape = generation.topologies[str(pool.topology)]
        tpu = TpuSlice(generation.gke_accelerator, str(pool.topology), shape.hosts, pool.slices)
    return NodePoolArgs(
        name=pool.name,
        accelerator_name=pool.accelerator,
        accelerator=catalog.accelerators[pool.accelerator],
        instance_type=str(pool.instance_type),
        instance=catalog.instance_types[pool.sizing_type(catalog)],
        instance_types=tuple(types),
        accelerators_per_node=pool.accelerators_per_node or 0,
        max_nodes=pool.max_nodes,
        min_nodes=pool.min_nodes,
        desired_nodes=pool.desired,
        market=pool.market,
        fallback=tuple(pool.fallback),
        karpenter=karpenter,
        reservation_id=pool.reservation_id,
        zone=pool.zone,
        efa=pool.efa,
        placement_group=pool.placement_group,
        root_volume_gib=pool.root_volume_gib,
        labels=dict(pool.labels),
        taints=tuple(Taint(t.key, t.value, t.effect) for t in pool.taints),
        tpu=tpu,
        gpu_type=gpu_type,
        gpu_types={t: own for t, own in gpu_types.items() if own is not None and own != gpu_type},
        compute_class=f"meshstack-{pool.name}" if ordered else None,
        workload_nodes=workload_nodes,
    )


def stack_pools(spec: StackSpec, catalog: Catalog) -> dict[tuple[str, str], NodePoolArgs]:
    """Every pool of the stack by (cluster, pool): what the clusters and the workloads' placements share,
    with the nodes per slice the stack's workloads keep busy while they all run."""
    demands: dict[tuple[str, str], list[Demand]] = {}
    for workload, need in zip(spec.workloads, spec.demands(catalog), strict=True):
        demands.setdefault((workload.cluster, workload.node_pool), []).append(need)
    return {
        (c.name, p.name): pool_args(
            p, catalog, running_nodes(p, demands.get((c.name, p.name), [])), c.karpenter_owns(p)
        )
        for c in spec.clusters
        for p in c.node_pools
    }
