"""An EKS cluster its owners run: looked up by name, with a Kubernetes provider built from it and the
add-ons, queues and monitoring meshstack installs; no cluster, node group, cluster IAM or network."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from meshstack.components.aws.eks import kubeconfig
from meshstack.components.aws.iam import ServiceAccountRoles
from meshstack.components.k8s.addons import AddonNeeds, ClusterAddons, ClusterAddonsArgs
from meshstack.components.lookups import nested
from meshstack.core.kubernetes import existing_minor
from meshstack.core.nodes import NodePoolArgs


@dataclass(frozen=True, kw_only=True)
class ExistingEksClusterArgs:
    """An EKS cluster its owners run. Its API is reached at the looked-up endpoint with `aws eks get-token`
    credentials, or through `context`."""

    cluster_name: str
    """The cluster's name in EKS, looked up at every `pulumi up` and preview."""
    region: str
    """The region the cluster is in."""
    node_pools: Sequence[NodePoolArgs]
    """The nodes the cluster already has, as the stack's pools describe them (for placement and add-ons)."""
    context: str | None = None
    """A context of the deployer's kubeconfig to reach the API through instead of the looked-up endpoint."""
    installed: Sequence[str] = ()
    """Add-ons the cluster's owners already run, which are then not installed."""
    zones: Sequence[str] = ()
    """Zone ids whose subnets (among the cluster's) the stack's file systems put mount targets in."""
    addons: AddonNeeds = field(default_factory=AddonNeeds)
    """What the stack's workloads and storage need installed (file system drivers, queues, namespaces)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags every taggable resource gets."""


class ExistingEksCluster(pulumi.ComponentResource):
    """Outputs: `cluster_name`, `endpoint`, `kubeconfig` (no secret: it calls `aws eks get-token`),
    `oidc_issuer` and `oidc_provider_arn` (the IAM OIDC provider the cluster's owners registered for its
    issuer: IRSA roles trust it), `vpc_id`, `security_group_id` (the cluster security group, which EKS
    puts on managed nodes: file systems admit it), `zone_subnets` (a subnet of the cluster per zone id of
    `zones`); `provider`, `iam` (`iam.service_account_role` makes IRSA roles) and `addons`.

    The cluster's node autoscaling stays its owners': no cluster-autoscaler is installed."""

    provider: k8s.Provider
    addons: ClusterAddons

    def __init__(self, name: str, args: ExistingEksClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshstack:aws:ExistingEksCluster", name, {"existing_cluster": args.cluster_name}, opts)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        looked = aws.eks.get_cluster_output(name=args.cluster_name, opts=invoke)
        cluster = args.cluster_name
        self.cluster_name = looked.name
        self.endpoint = looked.endpoint
        self.oidc_issuer = looked.identities.apply(lambda ids: str(nested(ids, 0, "oidcs", 0, "issuer")))
        self.oidc_provider_arn = aws.iam.get_open_id_connect_provider_output(url=self.oidc_issuer, opts=invoke).arn
        self.iam = ServiceAccountRoles(f"{name}-iam", self, self.oidc_provider_arn, self.oidc_issuer, args.tags)
        vpc = looked.vpc_config
        self.vpc_id = vpc.apply(lambda v: str(nested(v, "vpc_id")))
        self.security_group_id = vpc.apply(lambda v: str(nested(v, "cluster_security_group_id")))
        subnet_ids = vpc.apply(lambda v: list(nested(v, "subnet_ids")))
        self.zone_subnets = {
            zone: aws.ec2.get_subnets_output(
                filters=[
                    {"name": "subnet-id", "values": subnet_ids},
                    {"name": "availability-zone-id", "values": [zone]},
                ],
                opts=invoke,
            ).ids.apply(lambda ids, zone=zone: _one_subnet(cluster, zone, ids))
            for zone in args.zones
        }
        # The version is checked before anything reaches the cluster: every object goes through this provider.
        minor = looked.version.apply(lambda v: existing_minor(cluster, v))
        self.kubeconfig = pulumi.Output.all(looked.name, looked.endpoint, looked.certificate_authorities, minor).apply(
            lambda a: kubeconfig(a[0], a[1], nested(a[2], 0, "data"), args.region)
        )
        child = pulumi.ResourceOptions(parent=self)
        if args.context is None:
            self.provider = k8s.Provider(
                f"{name}-k8s", kubeconfig=self.kubeconfig, enable_server_side_apply=True, opts=child
            )
        else:
            context = args.context
            self.provider = k8s.Provider(
                f"{name}-k8s", context=minor.apply(lambda _: context), enable_server_side_apply=True, opts=child
            )
        self.addons = ClusterAddons(
            f"{name}-addons",
            ClusterAddonsArgs(args.node_pools, args.addons, installed=args.installed),
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider),
        )
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "endpoint": self.endpoint,
                "kubeconfig": self.kubeconfig,
                "oidc_provider_arn": self.oidc_provider_arn,
            }
        )


def _one_subnet(cluster: str, zone: str, ids: Sequence[str]) -> str:
    if not ids:
        raise ValueError(f"existing cluster '{cluster}' has no subnet in zone {zone} (network.zones)")
    return sorted(ids)[0]
