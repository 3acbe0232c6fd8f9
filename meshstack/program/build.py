"""Composes the components a spec asks for. The one place that knows how a stack is put together."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi

from components.aws.eks import EksCluster
from components.aws.iam import ClusterIam
from components.aws.network import Network as AwsNetwork
from components.aws.storage import Storage as AwsStorage
from components.gcp.gke import GkeCluster
from components.gcp.network import Network as GcpNetwork
from components.gcp.storage import Storage as GcpStorage
from components.governance import Budget
from components.k8s.addons import AddonNeeds
from meshstack.core.catalog import Catalog, load_catalog
from meshstack.core.spec import ClusterSpec, StackSpec
from meshstack.program.placement import Cluster, StorageTargets, deploy_workloads
from workloads.k8s.volumes import FileSystemRef


def addon_needs(spec: StackSpec, cluster: ClusterSpec) -> AddonNeeds:
    return AddonNeeds(
        lustre=bool(spec.storage.lustre),
        efs=bool(spec.storage.efs),
        namespaces=tuple(sorted({w.namespace for w in spec.workloads if w.cluster == cluster.name})),
    )


def build(spec: StackSpec, catalog: Catalog | None = None) -> None:
    """Declare the stack's infrastructure and workloads, and export what operators need to reach them."""
    catalog = catalog or load_catalog(cloud=spec.cloud)
    Budget(f"{spec.name}-budget", spec.cloud, spec.environment, spec.budget)
    if spec.cloud == "gcp":
        storage, clusters = _gcp(spec, catalog)
    else:
        storage, clusters = _aws(spec, catalog)
    deploy_workloads(spec, catalog, storage, clusters)


def _aws(spec: StackSpec, catalog: Catalog) -> tuple[StorageTargets, dict[str, Cluster]]:
    tags = spec.resource_tags()
    network = AwsNetwork(f"{spec.name}-net", spec.network, spec.region, tags)
    storage = AwsStorage(
        f"{spec.name}-storage",
        spec.storage,
        network.vpc_id,
        network.private_subnet_ids,
        network.node_security_group_id,
        tags,
    )
    clusters: dict[str, Cluster] = {}
    exported = {}
    for cluster in spec.clusters:
        iam = ClusterIam(f"{spec.name}-{cluster.name}-iam", spec.region, tags)
        eks = EksCluster(
            f"{spec.name}-{cluster.name}",
            cluster,
            catalog,
            iam,
            spec.region,
            network.private_subnet_ids,
            network.node_security_group_id,
            tags,
            addon_needs(spec, cluster),
        )

        def grant(
            name: str, namespace: str, account: str, buckets: Sequence[str], read_only: bool, iam: ClusterIam = iam
        ) -> Mapping[str, pulumi.Input[str]]:
            role = iam.service_account_role(
                name,
                namespace,
                account,
                [storage.buckets[b].arn for b in buckets],
                [storage.kms_key_arn],
                read_only=read_only,
            )
            return {"eks.amazonaws.com/role-arn": role.arn}

        clusters[cluster.name] = Cluster(provider=eks.provider, addons=eks.addons, grant=grant)
        exported[cluster.name] = {"name": eks.cluster_name, "endpoint": eks.endpoint, "kubeconfig": eks.kubeconfig}
    filesystems: dict[tuple[str, str], FileSystemRef] = {}
    for fs in spec.storage.lustre:
        stored = storage.lustre[fs.name]
        filesystems[("lustre", fs.name)] = FileSystemRef(
            "fsx.csi.aws.com",
            stored.id,
            fs.capacity_gib,
            {"dnsname": stored.dns_name, "mountname": stored.mount_name},
            ("flock",),
        )
    for efs in spec.storage.efs:
        filesystems[("efs", efs.name)] = FileSystemRef(
            "efs.csi.aws.com", storage.efs[efs.name], max(int(efs.size_gib), 1)
        )
    pulumi.export("vpc_id", network.vpc_id)
    pulumi.export("clusters", exported)
    pulumi.export("buckets", {name: b.name for name, b in storage.buckets.items()})
    return StorageTargets("s3", {name: b.name for name, b in storage.buckets.items()}, filesystems), clusters


def _gcp(spec: StackSpec, catalog: Catalog) -> tuple[StorageTargets, dict[str, Cluster]]:
    labels = spec.resource_tags()
    project, zone = str(spec.project), str(spec.zone)
    network = GcpNetwork(f"{spec.name}-net", spec.network, project, spec.region, labels)
    storage = GcpStorage(f"{spec.name}-storage", spec.storage, project, spec.region, zone, network.network_id, labels)
    clusters: dict[str, Cluster] = {}
    exported = {}
    for cluster in spec.clusters:
        gke = GkeCluster(
            f"{spec.name}-{cluster.name}",
            cluster,
            catalog,
            spec.network,
            network.network_id,
            network.subnetwork_id,
            project,
            spec.region,
            zone,
            labels,
            addon_needs(spec, cluster),
            deletion_protection=spec.environment == "prod",
        )

        def grant(
            name: str, namespace: str, account: str, buckets: Sequence[str], read_only: bool, gke: GkeCluster = gke
        ) -> Mapping[str, pulumi.Input[str]]:
            return gke.identity.workload_account(
                name, namespace, account, [storage.buckets[b] for b in buckets], read_only
            )

        clusters[cluster.name] = Cluster(provider=gke.provider, addons=gke.addons, grant=grant)
        exported[cluster.name] = {"name": gke.cluster_name, "endpoint": gke.endpoint, "kubeconfig": gke.kubeconfig}
    filesystems = {
        ("filestore", name): FileSystemRef(
            "filestore.csi.storage.gke.io",
            fs.name.apply(lambda n, share=fs.share: f"modeInstance/{zone}/{n}/{share}"),
            fs.capacity_gib,
            {"ip": fs.ip, "volume": fs.share},
        )
        for name, fs in storage.filestore.items()
    }
    pulumi.export("network_id", network.network_id)
    pulumi.export("clusters", exported)
    pulumi.export("buckets", dict(storage.buckets))
    return StorageTargets("gs", storage.buckets, filesystems), clusters
