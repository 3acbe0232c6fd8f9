"""The stack on Google Cloud: a VPC, GCS/Filestore storage, and one private GKE cluster per spec cluster
with Workload Identity service accounts; or, on existing GKE clusters, their network and pools, looked up."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import pulumi

from meshstack.components.gcp.cloud import settings_of
from meshstack.components.gcp.existing import ExistingGkeCluster, ExistingGkeClusterArgs
from meshstack.components.gcp.gke import GkeCluster, GkeClusterArgs
from meshstack.components.gcp.maintenance import MaintenanceArgs, MaintenanceExclusionArgs
from meshstack.components.gcp.network import Network, NetworkArgs
from meshstack.components.gcp.storage import Storage, StorageArgs
from meshstack.components.platform import ClusterHandle, Platform, StorageTargets, addon_needs
from meshstack.core.nodes import NodePoolArgs
from meshstack.core.spec import ClusterSpec, StackSpec
from meshstack.core.spec.maintenance import MaintenanceSpec
from meshstack.workloads.k8s.metrics import MetricsBackend
from meshstack.workloads.k8s.volumes import FileSystemRef


def filestore_handle(zone: str, share: str, instance: str) -> str:
    """The Filestore CSI driver's volume handle for an existing instance's share."""
    return f"modeInstance/{zone}/{instance}/{share}"


def maintenance_args(spec: MaintenanceSpec) -> MaintenanceArgs:
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    return MaintenanceArgs(
        **spec.recurring_window(),
        exclusions=[
            MaintenanceExclusionArgs(e.name, e.start_utc.strftime(stamp), e.end_utc.strftime(stamp))
            for e in spec.exclusions
        ],
    )


Cluster = GkeCluster | ExistingGkeCluster


def platform(spec: StackSpec, pools: Mapping[tuple[str, str], NodePoolArgs]) -> Platform:
    labels = spec.resource_tags("labels")
    settings = settings_of(spec)
    project, zone = settings.project, settings.zone
    built: dict[str, Cluster] = {}
    if spec.clusters[0].existing is not None:  # validated: a stack's clusters are all existing or all new
        existing = {c.name: _existing(spec, c, pools) for c in spec.clusters}
        # Storage joins the first cluster's network (validation allows file systems with one cluster only).
        network_id: pulumi.Input[str] = next(iter(existing.values())).network_id
        built.update(existing)
    else:
        network = Network(f"{spec.name}-net", NetworkArgs(spec.network, project, spec.region, labels))
        network_id = network.network_id
        for cluster in spec.clusters:
            built[cluster.name] = _new(spec, cluster, pools, network, labels)
    storage = Storage(
        f"{spec.name}-storage",
        StorageArgs(
            storage=spec.storage,
            project=project,
            region=spec.region,
            zone=zone,
            network_id=network_id,
            labels=labels,
        ),
    )
    clusters: dict[str, ClusterHandle] = {}
    exported = {}
    for cluster_name, gke in built.items():

        def grant(
            name: str,
            namespace: str,
            account: str,
            scopes: Sequence[tuple[str, str]],
            read_only: bool,
            gke: Cluster = gke,
        ) -> Mapping[str, pulumi.Input[str]]:
            buckets = [(storage.buckets[bucket], prefix) for bucket, prefix in scopes]
            return gke.identity.workload_account(name, namespace, account, buckets, read_only, gke.workload_pool)

        clusters[cluster_name] = ClusterHandle(
            provider=gke.provider,
            addons=gke.addons,
            grant=grant,
            metrics=MetricsBackend.gke_managed(project, f"{spec.name}-{cluster_name}"),
        )
        exported[cluster_name] = {"name": gke.cluster_name, "endpoint": gke.endpoint, "kubeconfig": gke.kubeconfig}
    filesystems = {
        ("filestore", name): FileSystemRef(
            "filestore.csi.storage.gke.io",
            fs.name.apply(functools.partial(filestore_handle, zone, fs.share)),
            fs.capacity_gib,
            {"ip": fs.ip, "volume": fs.share},
        )
        for name, fs in storage.filestore.items()
    }
    return Platform(
        StorageTargets("gs", storage.buckets, filesystems),
        clusters,
        {"network_id": network_id, "clusters": exported, "buckets": dict(storage.buckets)},
    )


def _new(
    spec: StackSpec,
    cluster: ClusterSpec,
    pools: Mapping[tuple[str, str], NodePoolArgs],
    network: Network,
    labels: Mapping[str, str],
) -> GkeCluster:
    _, _, master_cidr = spec.network.gke_ranges()
    return GkeCluster(
        f"{spec.name}-{cluster.name}",
        GkeClusterArgs(
            project=settings_of(spec).project,
            region=spec.region,
            zone=settings_of(spec).zone,
            kubernetes_version=str(cluster.kubernetes_version),
            node_pools=[pools[(cluster.name, p.name)] for p in cluster.node_pools],
            network_id=network.network_id,
            subnetwork_id=network.subnetwork_id,
            master_cidr=master_cidr,
            public_access_cidrs=cluster.public_access_cidrs,
            deployer_cidrs=cluster.deployer_cidrs,
            addons=addon_needs(spec, cluster.name),
            maintenance=maintenance_args(cluster.maintenance or MaintenanceSpec()),
            deletion_protection=spec.environment == "prod",
            labels=labels,
        ),
    )


def _existing(
    spec: StackSpec, cluster: ClusterSpec, pools: Mapping[tuple[str, str], NodePoolArgs]
) -> ExistingGkeCluster:
    existing = cluster.existing
    assert existing is not None
    return ExistingGkeCluster(
        f"{spec.name}-{cluster.name}",
        ExistingGkeClusterArgs(
            cluster_name=existing.name,
            project=settings_of(spec).project,
            location=existing.location or spec.region,
            node_pools=[pools[(cluster.name, p.name)] for p in cluster.node_pools],
            context=existing.context,
            installed=existing.installed,
            addons=addon_needs(spec, cluster.name),
        ),
    )
