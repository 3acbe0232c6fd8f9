"""The stack on AWS: a VPC, S3/FSx/EFS storage, and one EKS cluster per spec cluster with IRSA identities;
or, on existing EKS clusters, their network and identity providers, looked up."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi

from meshstack.components.aws.eks import EksCluster, EksClusterArgs
from meshstack.components.aws.existing import ExistingEksCluster, ExistingEksClusterArgs
from meshstack.components.aws.iam import Deployer, deployer
from meshstack.components.aws.network import Network, NetworkArgs
from meshstack.components.aws.storage import Storage, StorageArgs
from meshstack.components.platform import ClusterHandle, Platform, StorageTargets, addon_needs
from meshstack.core.nodes import NodePoolArgs
from meshstack.core.spec import ClusterSpec, StackSpec
from meshstack.core.spec.zones import lustre_zone
from meshstack.workloads.k8s.metrics import MetricsBackend
from meshstack.workloads.k8s.volumes import FileSystemRef


@dataclass(frozen=True)
class Site:
    """Where the stack's storage joins its clusters: the VPC, the subnets per zone id, and the security
    group the nodes are in."""

    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    node_security_group_id: pulumi.Input[str]
    zone_subnets: Mapping[str, pulumi.Input[str]]


Cluster = EksCluster | ExistingEksCluster


def platform(spec: StackSpec, pools: Mapping[tuple[str, str], NodePoolArgs]) -> Platform:
    tags = spec.resource_tags("tags")
    who = deployer()  # asked once for the whole program
    built: dict[str, Cluster] = {}
    if spec.clusters[0].existing is not None:  # validated: a stack's clusters are all existing or all new
        existing = {c.name: _existing(spec, c, pools, tags) for c in spec.clusters}
        # Storage joins the first cluster's network (validation allows file systems with one cluster only).
        first = next(iter(existing.values()))
        zones = spec.network.zones or []
        site = Site(first.vpc_id, [first.zone_subnets[z] for z in zones], first.security_group_id, first.zone_subnets)
        built.update(existing)
        where: dict[str, object] = {"vpc_id": first.vpc_id}
    else:
        network = Network(f"{spec.name}-net", NetworkArgs(spec.network, spec.region, tags))
        site = Site(network.vpc_id, network.private_subnet_ids, network.node_security_group_id, network.zone_subnets)
        for cluster in spec.clusters:
            built[cluster.name] = _new(spec, cluster, pools, site, who, tags)
        where = {"vpc_id": network.vpc_id}
    storage = Storage(
        f"{spec.name}-storage",
        StorageArgs(
            storage=spec.storage,
            vpc_id=site.vpc_id,
            private_subnet_ids=site.subnet_ids,
            node_security_group_id=site.node_security_group_id,
            lustre_subnets={
                fs.name: site.zone_subnets[zone] for fs in spec.storage.lustre if (zone := lustre_zone(spec, fs.name))
            },
            region=spec.region,
            deployer=who,
            tags=tags,
        ),
    )
    clusters: dict[str, ClusterHandle] = {}
    exported = {}
    for cluster_name, eks in built.items():

        def grant(
            name: str,
            namespace: str,
            account: str,
            scopes: Sequence[tuple[str, str]],
            read_only: bool,
            eks: Cluster = eks,
        ) -> Mapping[str, pulumi.Input[str]]:
            role = eks.iam.service_account_role(
                name,
                namespace,
                account,
                [(storage.buckets[bucket].arn, prefix) for bucket, prefix in scopes],
                [storage.kms_key_arn],
                read_only=read_only,
            )
            return {"eks.amazonaws.com/role-arn": role.arn}

        clusters[cluster_name] = ClusterHandle(
            provider=eks.provider, addons=eks.addons, grant=grant, metrics=MetricsBackend.operator()
        )
        exported[cluster_name] = {"name": eks.cluster_name, "endpoint": eks.endpoint, "kubeconfig": eks.kubeconfig}
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
    buckets = {name: b.name for name, b in storage.buckets.items()}
    return Platform(
        StorageTargets("s3", buckets, filesystems),
        clusters,
        {**where, "clusters": exported, "buckets": buckets},
    )


def _new(
    spec: StackSpec,
    cluster: ClusterSpec,
    pools: Mapping[tuple[str, str], NodePoolArgs],
    site: Site,
    who: Deployer,
    tags: Mapping[str, str],
) -> EksCluster:
    return EksCluster(
        f"{spec.name}-{cluster.name}",
        EksClusterArgs(
            region=spec.region,
            kubernetes_version=str(cluster.kubernetes_version),
            support_type=cluster.support_type,
            node_pools=[pools[(cluster.name, p.name)] for p in cluster.node_pools],
            subnet_ids=site.subnet_ids,
            node_security_group_id=site.node_security_group_id,
            zone_subnets=site.zone_subnets,
            public_access_cidrs=cluster.public_access_cidrs,
            deployer_cidrs=cluster.deployer_cidrs,
            deployer=who,
            admin_principal_arns=cluster.admin_principal_arns,
            log_types=cluster.log_types,
            karpenter=cluster.autoscaler == "karpenter",
            addons=addon_needs(spec, cluster.name),
            tags=tags,
        ),
    )


def _existing(
    spec: StackSpec, cluster: ClusterSpec, pools: Mapping[tuple[str, str], NodePoolArgs], tags: Mapping[str, str]
) -> ExistingEksCluster:
    existing = cluster.existing
    assert existing is not None
    return ExistingEksCluster(
        f"{spec.name}-{cluster.name}",
        ExistingEksClusterArgs(
            cluster_name=existing.name,
            region=spec.region,
            node_pools=[pools[(cluster.name, p.name)] for p in cluster.node_pools],
            context=existing.context,
            installed=existing.installed,
            zones=spec.network.zones or [],
            addons=addon_needs(spec, cluster.name),
            tags=tags,
        ),
    )
