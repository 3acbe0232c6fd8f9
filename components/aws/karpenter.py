"""Karpenter on EKS: its controller's IAM and interruption queue, the role its nodes run under, and one
NodePool with its EC2NodeClass per pool it launches nodes for.

What is rendered follows aws/karpenter-provider-aws at v1.14.1 (bde0065, 2026-08-20; read 2026-12-08):
the controller policy and the interruption queue's rules from
website/content/en/docs/getting-started/getting-started-with-karpenter/cloudformation.yaml, the objects
from pkg/apis/crds (which ../shared/k8s-schemas' karpenter.sh and karpenter.k8s.aws files match).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from meshstack.components.aws.iam import ClusterIam, Deployer, partition
from meshstack.components.aws.node_group import ROOT_DEVICE, efa_user_data
from meshstack.components.aws.pricing import MARKETS_ANNOTATION
from meshstack.components.tags import named
from meshstack.core.nodes import NodePoolArgs, launch_types, node_labels, node_taints
from meshstack.core.types import WORKLOAD_NODES
from meshstack.workloads.k8s.objects import CustomObject
from meshstack.workloads.k8s.workload_base import waits_for

KARPENTER_ACCOUNT = "karpenter"
KARPENTER_NAMESPACE = "kube-system"
# The EKS-optimized AL2023 release the nodes boot (awslabs/amazon-eks-ami v20260714, b4fffb7, its
# CHANGELOG covering Kubernetes 1.30-1.36; read 2026-12-08). Karpenter picks the standard, NVIDIA or
# Neuron variant per instance type (pkg/providers/amifamily/al2023.go). Pinned, not `latest`: a new
# release would drift, and so replace, every node.
AMI_ALIAS = "al2023@v20260714"
# Karpenter's own names for the markets: capacity reservations and blocks are both `reserved`, selected
# by id in the EC2NodeClass (docs/tasks/odcrs.md: capacity blocks since v1.6, feature gate
# ReservedCapacity on by default since then).
CAPACITY_TYPES = {"capacity-block": "reserved", "reservation": "reserved", "spot": "spot", "on-demand": "on-demand"}
# cloudformation.yaml's EventBridge rules: what Karpenter drains nodes ahead of.
INTERRUPTION_EVENTS = {
    "health": ("aws.health", "AWS Health Event"),
    "spot": ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
    "rebalance": ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
    "state-change": ("aws.ec2", "EC2 Instance State-change Notification"),
    "reservation": ("aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
}
# As the cluster-autoscaler's scale-down-unneeded-time: an empty node goes after 10 minutes.
CONSOLIDATE_AFTER = "10m"


def controller_policy(
    cluster_name: str, region: str, account: str, node_role_arn: str, queue_arn: str, profile_arn: str
) -> str:
    """The controller's rights, cloudformation.yaml's policies less what meshstack does itself: the instance
    profile is made here, so Karpenter only reads it (no iam:CreateInstanceProfile and its kin), and zonal
    shift stays off (no arc-zonal-shift)."""
    arn = f"arn:{partition(region)}"
    ec2 = f"{arn}:ec2:{region}"
    owned = {f"aws:ResourceTag/kubernetes.io/cluster/{cluster_name}": "owned"}
    requested = {
        f"aws:RequestTag/kubernetes.io/cluster/{cluster_name}": "owned",
        "aws:RequestTag/eks:eks-cluster-name": cluster_name,
    }
    launched = [
        f"{ec2}:*:{kind}/*"
        for kind in ("fleet", "instance", "volume", "network-interface", "launch-template", "spot-instances-request")
    ]
    statements: list[dict[str, Any]] = [
        {
            "Sid": "AllowScopedEC2InstanceAccessActions",
            "Effect": "Allow",
            "Resource": [
                f"{ec2}::image/*",
                f"{ec2}::snapshot/*",
                f"{ec2}:*:security-group/*",
                f"{ec2}:*:subnet/*",
                f"{ec2}:*:capacity-reservation/*",
                f"{ec2}:*:placement-group/*",
            ],
            "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
        },
        {
            "Sid": "AllowScopedEC2LaunchTemplateAccessActions",
            "Effect": "Allow",
            "Resource": f"{ec2}:*:launch-template/*",
            "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
            "Condition": {"StringEquals": owned, "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"}},
        },
        {
            "Sid": "AllowScopedEC2InstanceActionsWithTags",
            "Effect": "Allow",
            "Resource": launched,
            "Action": ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"],
            "Condition": {"StringEquals": requested, "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"}},
        },
        {
            "Sid": "AllowScopedResourceCreationTagging",
            "Effect": "Allow",
            "Resource": launched,
            "Action": "ec2:CreateTags",
            "Condition": {
                "StringEquals": {
                    **requested,
                    "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"],
                },
                "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
            },
        },
        {
            "Sid": "AllowScopedResourceTagging",
            "Effect": "Allow",
            "Resource": f"{ec2}:*:instance/*",
            "Action": "ec2:CreateTags",
            "Condition": {
                "StringEquals": owned,
                "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": cluster_name},
                "ForAllValues:StringEquals": {
                    "aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]
                },
            },
        },
        {
            "Sid": "AllowScopedDeletion",
            "Effect": "Allow",
            "Resource": [f"{ec2}:*:instance/*", f"{ec2}:*:launch-template/*"],
            "Action": ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
            "Condition": {"StringEquals": owned, "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"}},
        },
        {
            "Sid": "AllowPassingInstanceRole",
            "Effect": "Allow",
            "Resource": node_role_arn,
            "Action": "iam:PassRole",
            "Condition": {"StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]}},
        },
        {
            "Sid": "AllowInstanceProfileReadActions",
            "Effect": "Allow",
            "Resource": profile_arn,
            "Action": "iam:GetInstanceProfile",
        },
        {
            "Sid": "AllowUnscopedInstanceProfileListAction",
            "Effect": "Allow",
            "Resource": "*",
            "Action": "iam:ListInstanceProfiles",
        },
        {
            "Sid": "AllowAPIServerEndpointDiscovery",
            "Effect": "Allow",
            "Resource": f"{arn}:eks:{region}:{account}:cluster/{cluster_name}",
            "Action": "eks:DescribeCluster",
        },
        {
            "Sid": "AllowInterruptionQueueActions",
            "Effect": "Allow",
            "Resource": queue_arn,
            "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
        },
        {
            "Sid": "AllowRegionalReadActions",
            "Effect": "Allow",
            "Resource": "*",
            "Action": [
                "ec2:DescribeCapacityReservations",
                "ec2:DescribeImages",
                "ec2:DescribeInstances",
                "ec2:DescribeInstanceStatus",
                "ec2:DescribeInstanceTypeOfferings",
                "ec2:DescribeInstanceTypes",
                "ec2:DescribeLaunchTemplates",
                "ec2:DescribePlacementGroups",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSpotPriceHistory",
                "ec2:DescribeSubnets",
            ],
            "Condition": {"StringEquals": {"aws:RequestedRegion": region}},
        },
        {
            "Sid": "AllowSSMReadActions",
            "Effect": "Allow",
            "Resource": f"{arn}:ssm:{region}::parameter/aws/service/*",
            "Action": "ssm:GetParameter",
        },
        {"Sid": "AllowPricingReadActions", "Effect": "Allow", "Resource": "*", "Action": "pricing:GetProducts"},
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def queue_policy(queue_arn: str) -> str:
    """EventBridge (and SQS itself) may send; nothing reaches the queue without TLS."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "EC2InterruptionPolicy",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                },
                {
                    "Sid": "DenyHTTP",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "sqs:*",
                    "Resource": queue_arn,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
        }
    )


def chart_values(cluster_name: str, replicas: int) -> dict[str, Any]:
    """The chart's values: its service account (the Pod Identity association names it), the cluster and
    queue, and node repair (alpha at v1.14.1) so a node whose GPU the node monitoring agent marks failed
    is replaced, as a managed node group's auto repair does. Two replicas need two nodes outside Karpenter
    (the chart's required anti-affinity on hostname)."""
    return {
        "serviceAccount": {"name": KARPENTER_ACCOUNT},
        "replicas": replicas,
        "settings": {
            "clusterName": cluster_name,
            "interruptionQueue": cluster_name,
            "featureGates": {"nodeRepair": True},
        },
        "controller": {
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        },
    }


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


@dataclass(frozen=True, kw_only=True)
class KarpenterArgs:
    cluster_name: str
    """The EKS cluster's name, as Karpenter's settings and discovery tags name it."""
    region: str
    """The cluster's region."""
    deployer: Deployer
    """Who runs the program: its account goes into the controller's policy."""
    iam: ClusterIam
    """The cluster's IAM component, which makes the node role and the controller's pod identity role."""
    cluster: pulumi.Input[str]  # the cluster's name as an output, so the AWS resources wait for it
    """The cluster's name as an output, so the AWS resources wait for the cluster."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags every taggable resource gets."""


class Karpenter(pulumi.ComponentResource):
    """The AWS half of Karpenter: the interruption queue and its EventBridge rules, the node role with its
    instance profile and EC2_LINUX access entry, and the controller's Pod Identity role. `node_pools`
    declares the Kubernetes half once the chart that brings the CRDs is installed.

    Outputs: `instance_profile` (what the EC2NodeClasses launch under), `identity` (the Pod Identity
    association the chart's release must wait for).
    """

    instance_profile: pulumi.Output[str]

    def __init__(self, name: str, args: KarpenterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshstack:aws:Karpenter", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cluster_name, region, tags = args.cluster_name, args.region, args.tags
        self._name, self._tags = name, dict(tags)
        queue = aws.sqs.Queue(
            f"{name}-interruptions",
            name=cluster_name,
            message_retention_seconds=300,
            sqs_managed_sse_enabled=True,
            tags=named(tags, f"{name}-interruptions"),
            opts=child,
        )
        aws.sqs.QueuePolicy(
            f"{name}-interruptions", queue_url=queue.id, policy=queue.arn.apply(queue_policy), opts=child
        )
        for key, (source, detail) in INTERRUPTION_EVENTS.items():
            rule = aws.cloudwatch.EventRule(
                f"{name}-{key}",
                description=f"{detail} for Karpenter in {cluster_name}",
                event_pattern=json.dumps({"source": [source], "detail-type": [detail]}),
                tags=named(tags, f"{name}-{key}"),
                opts=child,
            )
            aws.cloudwatch.EventTarget(
                f"{name}-{key}", rule=rule.name, arn=queue.arn, target_id="KarpenterInterruptionQueueTarget", opts=child
            )
        node_role = args.iam.node_role("karpenter-node")
        profile = aws.iam.InstanceProfile(
            f"{name}-node", role=node_role.name, tags=named(tags, f"{name}-node"), opts=child
        )
        # Nodes join through their role's access entry; a managed node group makes its own, Karpenter's
        # nodes need this one.
        self.access = aws.eks.AccessEntry(
            f"{name}-node",
            cluster_name=args.cluster,
            principal_arn=node_role.arn,
            type="EC2_LINUX",
            tags=named(tags, f"{name}-node"),
            opts=child,
        )
        policy = pulumi.Output.all(node_role.arn, queue.arn, profile.arn).apply(
            lambda a: controller_policy(cluster_name, region, args.deployer.account, a[0], a[1], a[2])
        )
        role = args.iam.pod_identity_role("karpenter", policy)
        self.identity = aws.eks.PodIdentityAssociation(
            f"{name}-controller",
            cluster_name=args.cluster,
            namespace=KARPENTER_NAMESPACE,
            service_account=KARPENTER_ACCOUNT,
            role_arn=role.arn,
            tags=named(tags, f"{name}-controller"),
            opts=child,
        )
        self.instance_profile = profile.name
        self.register_outputs({"instance_profile": self.instance_profile})

    def node_pools(
        self,
        pools: Sequence[NodePoolArgs],
        subnets: Mapping[str, Sequence[pulumi.Input[str]]],
        security_group_ids: Sequence[pulumi.Input[str]],
        opts: pulumi.ResourceOptions,
    ) -> None:
        """A KarpenterPool per pool (by name, its subnets), through `opts`' provider and after its
        dependencies (the chart that installs the CRDs)."""
        for pool in pools:
            KarpenterPool(
                f"{self._name}-{pool.name}",
                KarpenterPoolArgs(pool, self.instance_profile, subnets[pool.name], security_group_ids, self._tags),
                opts=pulumi.ResourceOptions(parent=self).merge(opts),
            )


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
