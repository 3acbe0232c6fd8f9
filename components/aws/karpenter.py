"""Karpenter on EKS: its controller's IAM and interruption queue, the role its nodes run under, and one
NodePool with its EC2NodeClass per pool it launches nodes for (karpenter_nodes); the controller's and the
queue's policies are in karpenter_policies.

What is rendered follows aws/karpenter-provider-aws at v1.14.1 (bde0065, 2026-08-20; read 2026-12-08):
the interruption queue's rules from
website/content/en/docs/getting-started/getting-started-with-karpenter/cloudformation.yaml.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from meshstack.components.aws.iam import ClusterIam, Deployer
from meshstack.components.aws.karpenter_nodes import KarpenterPool, KarpenterPoolArgs
from meshstack.components.aws.karpenter_policies import controller_policy, queue_policy
from meshstack.components.tags import named
from meshstack.core.nodes import NodePoolArgs

KARPENTER_ACCOUNT = "karpenter"
KARPENTER_NAMESPACE = "kube-system"
# cloudformation.yaml's EventBridge rules: what Karpenter drains nodes ahead of.
INTERRUPTION_EVENTS = {
    "health": ("aws.health", "AWS Health Event"),
    "spot": ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
    "rebalance": ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
    "state-change": ("aws.ec2", "EC2 Instance State-change Notification"),
    "reservation": ("aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
}


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
