"""The Kubernetes half of Karpenter: a karpenter.sh NodePool and its karpenter.k8s.aws EC2NodeClass per pool,
booted as the pool's managed node group would be.

What is rendered follows aws/karpenter-provider-aws at v1.14.1 (bde0065, 2026-08-20; read 2026-12-08):
the objects from pkg/apis/crds (which ../shared/k8s-schemas' karpenter.sh and karpenter.k8s.aws files match).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from meshstack.components.aws.node_group import ROOT_DEVICE, efa_user_data
from meshstack.components.aws.pricing import MARKETS_ANNOTATION
from meshstack.components.tags import named
from meshstack.core.nodes import NodePoolArgs, launch_types, node_labels, node_taints
from meshstack.core.types import WORKLOAD_NODES
from meshstack.workloads.k8s.objects import CustomObject
from meshstack.workloads.k8s.workload_base import waits_for

# The EKS-optimized AL2023 release the nodes boot (awslabs/amazon-eks-ami v20260714, b4fffb7, its
# CHANGELOG covering Kubernetes 1.30-1.36; read 2026-12-08). Karpenter picks the standard, NVIDIA or
# Neuron variant per instance type (pkg/providers/amifamily/al2023.go). Pinned, not `latest`: a new
# release would drift, and so replace, every node.
AMI_ALIAS = "al2023@v20260714"
# Karpenter's own names for the markets: capacity reservations and blocks are both `reserved`, selected
# by id in the EC2NodeClass (docs/tasks/odcrs.md: capacity blocks since v1.6, feature gate
# ReservedCapacity on by default since then).
CAPACITY_TYPES = {"capacity-block": "reserved", "reservation": "reserved", "spot": "spot", "on-demand": "on-demand"}
# As the cluster-autoscaler's scale-down-unneeded-time: an empty node goes after 10 minutes.
CONSOLIDATE_AFTER = "10m"


def capacity_types(pool: NodePoolArgs) -> list[str]:
    """The pool's markets as Karpenter's capacity types (validation keeps them in Karpenter's own order)."""
    return list(dict.fromkeys(CAPACITY_TYPES[m] for m in (pool.market, *pool.fallback)))


def node_pool(pool: NodePoolArgs) -> dict[str, Any]:
    """A karpenter.sh/v1 NodePool: the pool's types, markets, zone, labels and taints, at most max_nodes.
    Accelerator nodes are only ever taken away empty (WhenEmpty) and never expire, one at a time: a
    training pod's `karpenter.sh/do-not-disrupt` keeps drift off its node too; expiry would not wait."""
    accelerated = pool.accelerator.vendor != "none"
    requirements = [
        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": launch_types(pool)},
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": capacity_types(pool)},
    ]
    if pool.zone:
        requirements.append({"key": "topology.k8s.aws/zone-id", "operator": "In", "values": [pool.zone]})
    spec: dict[str, Any] = {
        "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": pool.name},
        "requirements": requirements,
        "taints": node_taints(pool),
    }
    if accelerated:
        spec["expireAfter"] = "Never"
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": pool.name, "annotations": {MARKETS_ANNOTATION: " ".join((pool.market, *pool.fallback))}},
        "spec": {
            "template": {"metadata": {"labels": node_labels(pool)}, "spec": spec},
            "disruption": {
                "consolidationPolicy": "WhenEmpty" if accelerated else "WhenEmptyOrUnderutilized",
                "consolidateAfter": CONSOLIDATE_AFTER,
                "budgets": [{"nodes": "1" if accelerated else "10%"}],
            },
            "limits": {"nodes": str(pool.max_nodes)},
        },
    }


def node_class(
    pool: NodePoolArgs,
    instance_profile: pulumi.Input[str],
    subnet_ids: Sequence[pulumi.Input[str]],
    security_group_ids: Sequence[pulumi.Input[str]],
    tags: Mapping[str, str],
    placement_group: pulumi.Input[str] | None = None,
) -> dict[str, Any]:
    """A karpenter.k8s.aws/v1 EC2NodeClass booting the pool's nodes as its managed node group's launch
    template would: IMDSv2 only, an encrypted gp3 root, the EFA memlock drop-in, its reservation. EFA
    interfaces Karpenter attaches itself when the pods request vpc.amazonaws.com/efa."""
    spec: dict[str, Any] = {
        "amiSelectorTerms": [{"alias": AMI_ALIAS}],
        "instanceProfile": instance_profile,
        "subnetSelectorTerms": [{"id": s} for s in subnet_ids],
        "securityGroupSelectorTerms": [{"id": g} for g in security_group_ids],
        "metadataOptions": {
            "httpEndpoint": "enabled",
            "httpProtocolIPv6": "disabled",
            "httpPutResponseHopLimit": 1,
            "httpTokens": "required",
        },
        "blockDeviceMappings": [
            {
                "deviceName": ROOT_DEVICE,
                "ebs": {
                    "volumeSize": f"{pool.root_volume_gib}Gi",
                    "volumeType": "gp3",
                    "encrypted": True,
                    "deleteOnTermination": True,
                },
            }
        ],
        "tags": dict(tags),
    }
    if pool.efa:
        spec["userData"] = efa_user_data()
    if pool.reservation_id is not None:
        spec["capacityReservationSelectorTerms"] = [{"id": pool.reservation_id}]
    if placement_group is not None:
        spec["placementGroupSelector"] = {"name": placement_group}
    return {"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": pool.name}, "spec": spec}


@dataclass(frozen=True)
class KarpenterPoolArgs:
    pool: NodePoolArgs
    """The pool Karpenter launches nodes for (one EC2NodeClass and NodePool)."""
    instance_profile: pulumi.Input[str]
    """The instance profile its nodes launch with."""
    subnet_ids: Sequence[pulumi.Input[str]]
    """The subnets its nodes launch in (the pool's zone's alone where it names one)."""
    security_group_ids: Sequence[pulumi.Input[str]]
    """The security groups its nodes get."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags the launched instances and the placement group get."""


class KarpenterPool(pulumi.ComponentResource):
    """One pool's EC2NodeClass and NodePool (and its cluster placement group, where asked). It declares the
    nodes the stack's workloads keep busy, as a NodeGroup does, so the estimate prices them running."""

    def __init__(self, name: str, args: KarpenterPoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshstack:aws:KarpenterPool", name, {WORKLOAD_NODES: {name: args.pool.workload_nodes}}, opts)
        pool = args.pool
        # The provider and the CRD installer, which a component does not pass down by itself.
        objects = pulumi.ResourceOptions(
            parent=self, provider=opts.provider if opts else None, depends_on=waits_for(opts)
        )
        group = None
        if pool.placement_group:
            placement = aws.ec2.PlacementGroup(
                f"{name}-placement",
                strategy="cluster",
                tags=named(args.tags, name),
                opts=pulumi.ResourceOptions(parent=self),
            )
            group = placement.name
        body = node_class(pool, args.instance_profile, args.subnet_ids, args.security_group_ids, args.tags, group)
        CustomObject(f"{name}-class", body, objects)
        CustomObject(name, node_pool(pool), objects)
        self.register_outputs({})
