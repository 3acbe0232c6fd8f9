"""Composes the components a spec asks for. The one place that knows how a stack is put together."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.aws.eks import AddonNeeds, EksCluster
from components.aws.iam import ClusterIam
from components.aws.network import Network
from components.aws.storage import Storage
from components.catalog import Catalog, load_catalog
from components.governance import Budget
from meshstack.placement import Cluster, deploy_workloads
from meshstack.spec import StackSpec


@dataclass(frozen=True)
class BuiltStack:
    spec: StackSpec
    network: Network
    storage: Storage
    clusters: dict[str, Cluster]


def build(spec: StackSpec, catalog: Catalog | None = None) -> BuiltStack:
    """Declare the stack's infrastructure and export what operators need to reach it."""
    catalog = catalog or load_catalog()
    tags = spec.resource_tags()
    Budget(f"{spec.name}-budget", spec.environment, spec.budget)
    network = Network(f"{spec.name}-net", spec.network, spec.region, tags)
    storage = Storage(
        f"{spec.name}-storage",
        spec.storage,
        network.vpc_id,
        network.private_subnet_ids,
        network.node_security_group_id,
        tags,
    )
    clusters: dict[str, Cluster] = {}
    for cluster in spec.clusters:
        iam = ClusterIam(f"{spec.name}-{cluster.name}-iam", spec.region, tags)
        on_cluster = [w for w in spec.workloads if w.cluster == cluster.name]
        needs = AddonNeeds(
            lustre=bool(spec.storage.lustre),
            efs=bool(spec.storage.efs),
            namespaces=tuple(sorted({w.namespace for w in on_cluster})),
        )
        eks = EksCluster(
            f"{spec.name}-{cluster.name}",
            cluster,
            catalog,
            iam,
            spec.region,
            network.private_subnet_ids,
            network.node_security_group_id,
            tags,
            needs,
        )
        clusters[cluster.name] = Cluster(iam=iam, eks=eks)

    deploy_workloads(spec, catalog, storage, clusters)

    pulumi.export("vpc_id", network.vpc_id)
    pulumi.export(
        "clusters",
        {
            name: {"name": c.eks.cluster_name, "endpoint": c.eks.endpoint, "kubeconfig": c.eks.kubeconfig}
            for name, c in clusters.items()
        },
    )
    pulumi.export("buckets", {name: b.name for name, b in storage.buckets.items()})
    return BuiltStack(spec=spec, network=network, storage=storage, clusters=clusters)
