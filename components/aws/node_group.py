"""One node pool: a launch template that fixes how its nodes boot, and the managed node group."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from meshstack.components.aws.pricing import FALLBACK_TAG
from meshstack.components.tags import named
from meshstack.core.nodes import NodePoolArgs, launch_types, node_labels, node_taints
from meshstack.core.types import WORKLOAD_NODES
from meshstack.core.vendors import VENDORS
from meshstack.core.vocabulary import PINNED_MARKETS, TAINT_EFFECT_ENUMS

CAPACITY_TYPES = {
    "on-demand": "ON_DEMAND",
    "spot": "SPOT",
    "capacity-block": "CAPACITY_BLOCK",
    "reservation": "ON_DEMAND",
}
ROOT_DEVICE = "/dev/xvda"  # the AL2023 EKS AMIs' root device
MIME_BOUNDARY = "MESHSTACK"
# EFA registers (pins) memory for RDMA, bounded by RLIMIT_MEMLOCK. Containers inherit it from
# containerd, whose unit on the EKS AMI sets no memlock limit and whose base runtime spec sets
# only RLIMIT_NOFILE (awslabs/amazon-eks-ami, nodeadm/internal/containerd/base-runtime-spec.json,
# read 2026-11-25). This drop-in lifts it before nodeadm starts containerd, so pods need no
# capability: a non-root container's IPC_LOCK would be inert anyway.
EFA_MEMLOCK_SCRIPT = """#!/bin/bash
set -euo pipefail
mkdir -p /etc/systemd/system/containerd.service.d
printf '[Service]\\nLimitMEMLOCK=infinity\\n' > /etc/systemd/system/containerd.service.d/90-efa-memlock.conf
systemctl daemon-reload
"""


def efa_user_data() -> str:
    """MIME multi-part user data, the form EKS merges with its own nodeadm config on AL2023 node groups."""
    return (
        f'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="{MIME_BOUNDARY}"\n\n'
        f'--{MIME_BOUNDARY}\nContent-Type: text/x-shellscript; charset="us-ascii"\n\n'
        f"{EFA_MEMLOCK_SCRIPT}\n--{MIME_BOUNDARY}--\n"
    )


def efa_interface_type(efa_only_secondary: bool, card: int) -> str:
    """The first card carries the node's IP traffic (EFA with ENA); on types that support it the others
    are EFA-only, RDMA without an IP address, so a p5 node takes one subnet address, not 32 (EC2 User
    Guide, "EFA-only interfaces", read 2026-11-26)."""
    return "efa-only" if efa_only_secondary and card > 0 else "efa"


NODE_TEMPLATE = "k8s.io/cluster-autoscaler/node-template"


def node_template_tags(pool: NodePoolArgs) -> dict[str, str]:
    """What a node of the pool will look like, as tags on its Auto Scaling group, so the
    cluster-autoscaler can scale an empty pool up: it cannot read labels, taints or extended
    resources off nodes that do not exist yet, and EKS does not copy a node group's labels and
    taints to its group's tags."""
    tags = {f"{NODE_TEMPLATE}/label/{k}": v for k, v in node_labels(pool).items()}
    tags.update({f"{NODE_TEMPLATE}/taint/{t['key']}": f"{t['value']}:{t['effect']}" for t in node_taints(pool)})
    if pool.accelerator.resource and pool.accelerators_per_node:
        tags[f"{NODE_TEMPLATE}/resources/{pool.accelerator.resource}"] = str(pool.accelerators_per_node)
    if pool.efa:
        tags[f"{NODE_TEMPLATE}/resources/vpc.amazonaws.com/efa"] = str(pool.instance.efa_interfaces)
    return tags


def _autoscaling_group(resources: Sequence[aws.eks.outputs.NodeGroupResource]) -> str:
    """The name of the Auto Scaling group EKS made for the node group (it has exactly one)."""
    return str(resources[0].autoscaling_groups[0].name)


@dataclass(frozen=True, kw_only=True)
class NodeGroupArgs:
    pool: NodePoolArgs
    """The pool the group runs: its types, market, counts, labels and taints."""
    cluster_name: pulumi.Input[str]
    """The EKS cluster the group joins."""
    node_role_arn: pulumi.Input[str]
    """The IAM role its nodes run as."""
    subnet_ids: Sequence[pulumi.Input[str]]
    """The subnets its nodes launch in (the pool's zone's alone where it names one)."""
    security_group_ids: Sequence[pulumi.Input[str]]
    """The security groups its nodes' launch template gives them."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags the group, its launch template and its instances get."""
    fallback_rank: int = 0
    """0: the group of the pool's first market; n: of its n-th fallback (`pool` then carries that market, and what
    follows it as its fallback)."""


def group_prefix(pool: NodePoolArgs, fallback_rank: int) -> str:
    """The node group's name prefix; EKS names its Auto Scaling group eks-<node group name>-<uuid>."""
    return f"{pool.name}-" if fallback_rank == 0 else f"{pool.name}-{pool.market}-"


def group_pattern(pool: NodePoolArgs, fallback_rank: int) -> str:
    """A pattern for the group's Auto Scaling group name and no other: the provider appends a 26-character
    unique suffix to the prefix, starting with an 18-digit timestamp, so pool `gpu` cannot match `gpu-2`."""
    return f"^eks-{group_prefix(pool, fallback_rank)}[0-9]{{18}}"


def update_config(pool: NodePoolArgs) -> dict[str, Any]:
    """How EKS replaces the pool's nodes when its launch template or AMI changes. By default it
    launches new nodes before it drains old ones, which a capacity block or a targeted reservation
    whose every instance runs cannot give; MINIMAL terminates first (EKS API NodegroupUpdateConfig),
    and all at once, so a training job spread over the pool restarts once, not once per node."""
    if pool.market in PINNED_MARKETS:
        return {"max_unavailable_percentage": 100, "update_strategy": "MINIMAL"}
    return {"max_unavailable": 1}


def node_repair_config(pool: NodePoolArgs) -> dict[str, Any] | None:
    """Node auto repair on accelerator pools: a node whose GPU or Neuron device fails (the node
    monitoring agent sets AcceleratedHardwareReady=False from XID errors and DCGM diagnostics) or that
    stays NotReady is drained, which marks its pods DisruptionTarget, and replaced (EKS User Guide,
    "Detect node health issues and enable automatic node repair"). A broken accelerator otherwise
    keeps its node in service, billing and failing every job scheduled onto it. CPU pools are left to
    the autoscaler: their faults show as NotReady, and a replaced CPU node saves no training time."""
    if pool.accelerator.vendor == "none":
        return None
    return {"enabled": True}


class NodeGroup(pulumi.ComponentResource):
    """A managed node group whose nodes require IMDSv2, encrypt their disks and, when asked,
    carry one EFA interface per network card inside a cluster placement group.

    The nodes go in `subnet_ids`: the cluster hands an EFA or placement-group pool one subnet (its
    zone's where it names one), since a cluster placement group lives in one AZ and EFA traffic does
    not cross AZs.
    """

    node_group_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: NodeGroupArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("meshstack:aws:NodeGroup", name, {WORKLOAD_NODES: {name: args.pool.workload_nodes}}, opts)
        pool, tags, subnet_ids, security_group_ids = args.pool, args.tags, args.subnet_ids, args.security_group_ids
        instance, accelerator = pool.instance, pool.accelerator
        child = pulumi.ResourceOptions(parent=self)
        template: dict[str, Any] = {
            "metadata_options": {
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": 1,
            },
            "block_device_mappings": [
                {
                    "device_name": ROOT_DEVICE,
                    "ebs": {
                        "volume_size": pool.root_volume_gib,
                        "volume_type": "gp3",
                        "encrypted": "true",
                        "delete_on_termination": "true",
                    },
                }
            ],
            "tag_specifications": [
                {"resource_type": kind, "tags": named(tags, name)}
                for kind in ("instance", "volume", "network-interface")
            ],
        }
        if pool.efa:
            template["user_data"] = base64.b64encode(efa_user_data().encode()).decode()
            template["network_interfaces"] = [
                {
                    "device_index": 0 if card == 0 else 1,
                    "network_card_index": card,
                    "interface_type": efa_interface_type(instance.efa_only_secondary, card),
                    "security_groups": list(security_group_ids),
                    "delete_on_termination": "true",
                }
                for card in range(instance.efa_interfaces)
            ]
        else:
            template["vpc_security_group_ids"] = list(security_group_ids)
        if pool.placement_group:
            group = aws.ec2.PlacementGroup(f"{name}-placement", strategy="cluster", tags=named(tags, name), opts=child)
            template["placement"] = {"group_name": group.name}
        if pool.reservation_id is not None:
            template["capacity_reservation_specification"] = {
                "capacity_reservation_target": {"capacity_reservation_id": pool.reservation_id}
            }
        if pool.market == "capacity-block":
            template["instance_market_options"] = {"market_type": "capacity-block"}

        launch_template = aws.ec2.LaunchTemplate(
            f"{name}-lt",
            description=f"meshstack node pool {pool.name}",
            update_default_version=True,
            tags=named(tags, name),
            opts=child,
            **template,
        )
        group_ = aws.eks.NodeGroup(
            name,
            cluster_name=args.cluster_name,
            node_group_name_prefix=group_prefix(pool, args.fallback_rank),
            node_role_arn=args.node_role_arn,
            subnet_ids=list(subnet_ids),
            # Several types: on-demand takes them in this order (EKS's prioritized allocation), spot by
            # price and capacity across all of them.
            instance_types=launch_types(pool),
            ami_type=VENDORS[accelerator.vendor].eks_ami_type,
            capacity_type=CAPACITY_TYPES[pool.market],
            scaling_config={"min_size": pool.min_nodes, "max_size": pool.max_nodes, "desired_size": pool.desired_nodes},
            update_config=update_config(pool),
            node_repair_config=node_repair_config(pool),
            launch_template={"id": launch_template.id, "version": launch_template.latest_version.apply(str)},
            labels=node_labels(pool),
            taints=[{**t, "effect": TAINT_EFFECT_ENUMS[t["effect"]]} for t in node_taints(pool)],
            tags={**named(tags, name), **({FALLBACK_TAG: " ".join(pool.fallback)} if pool.fallback else {})},
            opts=pulumi.ResourceOptions(
                parent=self,
                # The cluster autoscaler owns the live size; a later `up` must not undo it.
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )
        asg = group_.resources.apply(_autoscaling_group)
        for i, (key, value) in enumerate(sorted(node_template_tags(pool).items())):
            aws.autoscaling.Tag(
                f"{name}-ca-{i}",
                autoscaling_group_name=asg,
                tag={"key": key, "value": value, "propagate_at_launch": False},
                opts=child,
            )
        self.node_group_name = group_.node_group_name
        self.register_outputs({"node_group_name": self.node_group_name})
