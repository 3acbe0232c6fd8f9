"""The stack on AWS: a VPC, S3/FSx/EFS storage, and one EKS cluster per spec cluster with IRSA identities."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi

from components.aws.eks import EksCluster, EksClusterArgs
from components.aws.iam import deployer
from components.aws.network import Network, NetworkArgs
from components.aws.storage import Storage, StorageArgs
from components.platform import ClusterHandle, Platform, StorageTargets, addon_needs
from meshstack.core.nodes import NodePoolArgs
from meshstack.core.spec import StackSpec
from meshstack.core.spec.zones import lustre_zone
from workloads.k8s.metrics import MetricsBackend
from workloads.k8s.volumes import FileSystemRef


def platform(spec: StackSpec, pools: Mapping[tuple[str, str], NodePoolArgs]) -> Platform:
    tags = spec.resource_tags("tags")
    who = deployer()  # asked once for the whole program
    network = Network(f"{spec.name}-net", NetworkArgs(spec.network, spec.region, tags))
    storage = Storage(
        f"{spec.name}-storage",
        StorageArgs(
            storage=spec.storage,
            vpc_id=network.vpc_id,
            private_subnet_ids=network.private_subnet_ids,
            node_security_group_id=network.node_security_group_id,
            lustre_subnets={
                fs.name: network.zone_subnets[zone]
                for fs in spec.storage.lustre
                if (zone := lustre_zone(spec, fs.name))
            },
            region=spec.region,
            deployer=who,
            tags=tags,
        ),
    )
    clusters: dict[str, ClusterHandle] = {}
    exported = {}
    for cluster in spec.clusters:
        eks = EksCluster(
            f"{spec.name}-{cluster.name}",
            EksClusterArgs(
                region=spec.region,
                kubernetes_version=cluster.kubernetes_version,
                support_type=cluster.support_type,
                node_pools=[pools[(cluster.name, p.name)] for p in cluster.node_pools],
                subnet_ids=network.private_subnet_ids,
                node_security_group_id=network.node_security_group_id,
                zone_subnets=network.zone_subnets,
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

        def grant(
            name: str,
            namespace: str,
            account: str,
            scopes: Sequence[tuple[str, str]],
            read_only: bool,
            eks: EksCluster = eks,
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

        clusters[cluster.name] = ClusterHandle(
            provider=eks.provider, addons=eks.addons, grant=grant, metrics=MetricsBackend.operator()
        )
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
    buckets = {name: b.name for name, b in storage.buckets.items()}
    return Platform(
        StorageTargets("s3", buckets, filesystems),
        clusters,
        {"vpc_id": network.vpc_id, "clusters": exported, "buckets": buckets},
    )
