"""AWS as meshstack registers it: its catalog, its cluster names, and the rules only EKS has."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from meshstack.core.clouds import Cloud, TerraformProvider
from meshstack.core.validation import field_error

if TYPE_CHECKING:
    from meshstack.core.spec.cluster import ClusterSpec
    from meshstack.core.spec.stack import StackSpec

# The order Karpenter takes a NodePool's capacity types in, whatever order they are listed in: reserved
# (capacity reservations and blocks), then spot, then on-demand (karpenter-provider-aws v1.14.1,
# website/content/en/docs/concepts/nodepools.md "capacity type"; read 2026-12-08).
KARPENTER_ORDER: dict[str, int] = {"capacity-block": 0, "reservation": 0, "spot": 1, "on-demand": 2}
ZONE_ID = re.compile(r"^[a-z]{2,5}\d-az\d{1,2}$")
PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/.+$")


def check_stack(spec: StackSpec) -> None:
    """AWS keeps the aws: tag prefix to itself; an EKS cluster is in the stack's region, and an existing
    one's subnets are found by zone id."""
    for key in spec.tags:
        if key.lower().startswith("aws:"):
            raise field_error(f"tags.{key}", f"'{key}' is not a valid AWS tag key: the aws: prefix is AWS's own")
    for name in ("network", "subnetwork"):
        if getattr(spec.network, name) is not None:
            raise field_error(f"network.{name}", "names a network of another cloud, not AWS's")
    for i, zone in enumerate(spec.network.zones or []):
        if not ZONE_ID.match(zone):
            raise field_error(f"network.zones[{i}]", f"'{zone}' is not an AWS zone id such as use1-az4")
    existing = [(i, c.existing) for i, c in enumerate(spec.clusters) if c.existing is not None]
    for i, found in existing:
        if found.location is not None:
            raise field_error(
                f"clusters[{i}].existing.location", f"an EKS cluster is in the stack's region ({spec.region})"
            )
    filesystems = [
        kind for kind in type(spec.storage).model_fields if kind != "buckets" and getattr(spec.storage, kind)
    ]
    if existing and filesystems and spec.network.zones is None:
        raise field_error(
            "network.zones",
            f"list the zone ids of the existing cluster's subnets that {filesystems[0]}'s mount targets go in "
            "(use1-az4): they are looked up among its subnets by zone",
        )


def check_cluster(cluster: ClusterSpec) -> None:
    """EKS access entries take IAM principals; Karpenter launches the nodes of the pools that keep none."""
    for i, arn in enumerate(cluster.admin_principal_arns):
        if not PRINCIPAL_ARN.match(arn):
            raise field_error(
                f"admin_principal_arns[{i}]",
                f"'{arn}' is not an IAM role or user ARN (arn:aws:iam::<account>:role/<name>)",
            )
    if cluster.autoscaler != "karpenter":
        return
    if not any(p.min_nodes for p in cluster.node_pools):
        raise field_error(
            "node_pools",
            "Karpenter's controller runs on nodes it does not manage: give one pool (a CPU system pool) "
            "min_nodes of 1 or more, which stays a managed node group",
        )
    for i, pool in enumerate(cluster.node_pools):
        if not cluster.karpenter_owns(pool):
            continue
        if pool.desired_nodes:
            raise field_error(
                f"node_pools[{i}].desired_nodes",
                "a Karpenter pool (min_nodes 0) launches nodes for pending pods only: drop desired_nodes, or "
                "set min_nodes to keep a managed node group",
            )
        ranks = [KARPENTER_ORDER[m] for m in pool.markets]
        if ranks != sorted(ranks):
            raise field_error(
                f"node_pools[{i}].fallback",
                f"Karpenter takes reserved capacity, then spot, then on-demand, whatever the order listed: "
                f"'{', '.join(pool.markets)}' cannot be kept; list the markets in that order",
            )


# EKS CreateCluster takes "alphanumeric characters, hyphens and underscores, starting with an alphanumeric
# character, at most 100" (read 2026-12-08).
CLOUD = Cloud(
    name="aws",
    title="AWS",
    catalog=Path(__file__).with_name("catalog.yaml"),
    stack_template=Path(__file__).with_name("stack.yaml"),
    kubernetes_support=Path(__file__).with_name("kubernetes_support.yaml"),
    cluster_name=re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,99}$"),
    cluster_name_help="an EKS cluster name (letters, digits, - and _)",
    platform="meshstack.components.aws.platform:platform",
    pricing="meshstack.components.aws.pricing",
    image_registries=(".dkr.ecr.", "public.ecr.aws/"),
    mocks="meshstack.components.aws.mocks:AwsMocks",
    autoscalers=("cluster-autoscaler", "karpenter"),
    check_stack=check_stack,
    check_cluster=check_cluster,
    terraform=TerraformProvider(
        "aws", "registry.terraform.io/hashicorp/aws", Path(__file__).with_name("terraform.json")
    ),
)
