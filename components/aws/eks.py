"""An EKS cluster with encrypted secrets, a private API endpoint and one node group per pool."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from meshstack.components.aws.iam import ADDON_ROLES, ClusterIam, ClusterIamArgs, Deployer, autoscaler_policy, partition
from meshstack.components.aws.iam import deployer as iam_deployer
from meshstack.components.aws.karpenter import Karpenter, KarpenterArgs, chart_values
from meshstack.components.aws.node_group import NodeGroup, NodeGroupArgs, group_pattern
from meshstack.components.k8s.addons import (
    AUTOSCALER_ACCOUNT,
    AddonNeeds,
    ClusterAddons,
    ClusterAddonsArgs,
    autoscaler_values,
)
from meshstack.components.k8s.kubeconfig import exec_kubeconfig
from meshstack.components.tags import named
from meshstack.core.kubernetes import SupportType
from meshstack.core.nodes import NodePoolArgs, market_variants
from meshstack.core.vocabulary import LOG_TYPES, LogType

# Add-ons that must be there before nodes join, and those that need nodes to schedule on.
NETWORK_ADDONS = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
# The VPC CNI enforces Kubernetes NetworkPolicy only when asked (its network policy agent).
ADDON_CONFIGURATION = {"vpc-cni": {"enableNetworkPolicy": "true"}}
# eks-node-monitoring-agent: a DaemonSet on every node that turns kernel, network, storage and accelerator
# faults (NVIDIA XID errors and DCGM diagnostics, Neuron errors) into node conditions, which the node
# groups' auto repair acts on. It needs no AWS permissions.
SCHEDULED_ADDONS = ("coredns", "aws-ebs-csi-driver", "eks-node-monitoring-agent")
ADMIN_POLICY = "arn:{partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


def fallback_priorities(pools: Sequence[NodePoolArgs]) -> dict[int, list[str]]:
    """The priority expander's patterns: each pool's groups in its market order, every other group below
    them all (unnamed groups would never grow); empty where no pool has a fallback."""
    if not any(p.fallback for p in pools):
        return {}
    priorities: dict[int, list[str]] = {1: [".*"]}
    for pool in pools:
        groups = market_variants(pool)
        for rank, group in enumerate(groups):
            priorities.setdefault(10 * (len(groups) - rank) + 1, []).append(group_pattern(group, rank))
    return priorities


def kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that fetches short-lived tokens with `aws eks get-token`; it holds no secret."""
    plugin = {"command": "aws", "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region]}
    return exec_kubeconfig(cluster_name, endpoint, ca_data, plugin)


@dataclass(frozen=True, kw_only=True)
class EksClusterArgs:
    """An EKS cluster on private subnets, its API endpoint private unless opened."""

    region: str
    """The region the cluster is created in."""
    kubernetes_version: str
    """The minor version, such as '1.35': one meshstack pins add-ons for."""
    node_pools: Sequence[NodePoolArgs]
    """The cluster's pools: a managed node group per pool and market, or a Karpenter NodePool."""
    subnet_ids: Sequence[pulumi.Input[str]]
    """The private subnets the nodes and the API endpoint's interfaces go in."""
    node_security_group_id: pulumi.Input[str]
    """The security group every node gets (members reach each other on all protocols)."""
    zone_subnets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """The private subnet of each zone id: a pool naming a zone goes in that zone's subnet alone."""
    public_access_cidrs: Sequence[str] = ()
    """Networks the API endpoint is opened to from the internet; empty keeps it private."""
    deployer_cidrs: Sequence[str] = ()
    """Private networks routed to the VPC (a VPN, a CI runner's subnet) that reach the private endpoint on 443."""
    deployer: Deployer | None = None
    """Who runs the program (its account and role, given cluster-admin); looked up when not given."""
    admin_principal_arns: Sequence[str] = ()
    """IAM roles or users given cluster-admin through access entries."""
    support_type: SupportType = "STANDARD"
    """At the end of the version's standard support: STANDARD lets EKS upgrade the control plane, EXTENDED keeps the
    version (at the extended-support price) until its extended support ends."""
    log_types: Sequence[LogType] = LOG_TYPES
    """The control-plane logs sent to CloudWatch."""
    karpenter: bool = False
    """Install Karpenter: it launches the nodes of the pools marked `karpenter`; the others stay managed node groups."""
    addons: AddonNeeds = field(default_factory=AddonNeeds)
    """What the stack's workloads and storage need installed (file system drivers, queues, namespaces, alerts)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags every taggable resource gets."""


class EksCluster(pulumi.ComponentResource):
    """The control plane, its access entries and add-ons, the node groups, and a Kubernetes
    provider for the components that install things into the cluster.

    Authentication is by EKS access entries only (no aws-auth ConfigMap), so who
    may administer the cluster is an AWS resource that policy can read.

    Outputs: `cluster_name`, `endpoint`, `kubeconfig` (no secret in it: it calls
    `aws eks get-token`), `oidc_issuer` and `oidc_provider_arn` for IRSA; `provider`
    (a Kubernetes provider for the cluster), `iam` (its roles; `iam.service_account_role`
    makes IRSA roles), `node_groups` by pool name and `addons`.
    """

    cluster_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    provider: k8s.Provider
    node_groups: dict[str, NodeGroup]

    def __init__(
        self,
        name: str,
        args: EksClusterArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("meshstack:aws:EksCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        region, tags, subnet_ids = args.region, args.tags, args.subnet_ids
        self.iam = iam = ClusterIam(f"{name}-iam", ClusterIamArgs(region, tags), opts=child)
        key = aws.kms.Key(
            f"{name}-secrets",
            description=f"Envelope encryption of Kubernetes secrets in {name}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=named(tags, f"{name}-secrets"),
            opts=child,
        )
        cluster = aws.eks.Cluster(
            name,
            name=name,
            version=args.kubernetes_version,
            role_arn=iam.cluster_role_arn,
            vpc_config={
                "subnet_ids": list(subnet_ids),
                "endpoint_private_access": True,
                "endpoint_public_access": bool(args.public_access_cidrs),
                **({"public_access_cidrs": list(args.public_access_cidrs)} if args.public_access_cidrs else {}),
            },
            encryption_config={"provider": {"key_arn": key.arn}, "resources": ["secrets"]},
            enabled_cluster_log_types=list(args.log_types),
            access_config={"authentication_mode": "API", "bootstrap_cluster_creator_admin_permissions": False},
            bootstrap_self_managed_addons=False,
            upgrade_policy={"support_type": args.support_type},
            tags=named(tags, name),
            opts=child,
        )
        # The deployer gets its admin entry explicitly, like every other admin, rather than through
        # bootstrap_cluster_creator_admin_permissions: EKS refuses (409) a second entry for a principal
        # it bootstrapped, so a deployer also named in admin_principal_arns would fail the `up`.
        who = args.deployer or iam_deployer()
        deployer = who.principal_arn
        admins = {f"{name}-admin-{i}": arn for i, arn in enumerate(args.admin_principal_arns)}
        if deployer not in admins.values():
            admins[f"{name}-deployer"] = deployer
        deployer_access: list[pulumi.Resource] = []
        for entry_name, principal in admins.items():
            entry = aws.eks.AccessEntry(
                entry_name,
                cluster_name=cluster.name,
                principal_arn=principal,
                type="STANDARD",
                tags=named(tags, entry_name),
                opts=child,
            )
            association = aws.eks.AccessPolicyAssociation(
                entry_name,
                cluster_name=cluster.name,
                principal_arn=principal,
                policy_arn=ADMIN_POLICY.format(partition=partition(region)),
                access_scope={"type": "cluster"},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[entry]),
            )
            if principal == deployer:
                deployer_access.append(association)

        for i, cidr in enumerate(args.deployer_cidrs):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-deployer-{i}",
                security_group_id=cluster.vpc_config.cluster_security_group_id,
                cidr_ipv4=cidr,
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                description="the Kubernetes API from where `pulumi up` runs",
                tags=named(tags, f"{name}-deployer-{i}"),
                opts=child,
            )

        network_addons = [self._addon(name, addon, cluster, tags, []) for addon in NETWORK_ADDONS]
        cluster_sg = cluster.vpc_config.cluster_security_group_id
        managed = [p for p in args.node_pools if not p.karpenter]
        self.node_groups = {}
        for pool in managed:
            # A node group has one capacity type, so each market of the pool's order is a group of its own.
            for rank, group in enumerate(market_variants(pool)):
                key = pool.name if rank == 0 else f"{pool.name}-{group.market}"
                self.node_groups[key] = NodeGroup(
                    f"{name}-{key}",
                    NodeGroupArgs(
                        pool=group,
                        cluster_name=cluster.name,
                        node_role_arn=iam.node_role_arn,
                        subnet_ids=self._subnets(pool, args),
                        security_group_ids=[args.node_security_group_id, cluster_sg],
                        tags=tags,
                        fallback_rank=rank,
                    ),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=network_addons),
                )
        scheduled = {
            addon: self._addon(name, addon, cluster, tags, list(self.node_groups.values()))
            for addon in SCHEDULED_ADDONS
        }

        issuer = cluster.identities.apply(lambda ids: ids[0]["oidcs"][0]["issuer"])
        self.oidc_provider_arn = iam.add_oidc_provider(issuer)
        self.oidc_issuer = issuer
        self.cluster_name = cluster.name
        self.endpoint = cluster.endpoint
        self.kubeconfig = pulumi.Output.all(cluster.name, cluster.endpoint, cluster.certificate_authority).apply(
            lambda a: kubeconfig(a[0], a[1], a[2]["data"], region)
        )
        # Whatever goes through the provider waits for the nodes and for the deployer's own access
        # policy: before it is associated, the API server refuses the deployer.
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*self.node_groups.values(), *deployer_access]),
        )
        # The cluster-autoscaler resizes the node groups (discovered by the tags EKS puts on their
        # Auto Scaling groups) under its own Pod Identity role.
        autoscaler_role = iam.pod_identity_role("autoscaler", autoscaler_policy(name))
        autoscaler_identity = aws.eks.PodIdentityAssociation(
            f"{name}-autoscaler",
            cluster_name=cluster.name,
            namespace="kube-system",
            service_account=AUTOSCALER_ACCOUNT,
            role_arn=autoscaler_role.arn,
            tags=named(tags, f"{name}-autoscaler"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=network_addons),
        )
        values = autoscaler_values(
            args.kubernetes_version,
            {"cloudProvider": "aws", "awsRegion": region, "autoDiscovery": {"clusterName": name}},
            fallback_priorities(managed),
        )
        karpenter = None
        identities: list[pulumi.Resource] = [autoscaler_identity]
        if args.karpenter:
            karpenter = Karpenter(
                f"{name}-karpenter",
                KarpenterArgs(cluster_name=name, region=region, deployer=who, iam=iam, cluster=cluster.name, tags=tags),
                opts=pulumi.ResourceOptions(parent=self, depends_on=network_addons),
            )
            identities.append(karpenter.identity)
        # The controller's replicas spread over the managed nodes, one per node (the chart's anti-affinity).
        hosts = sum(p.min_nodes for p in managed)
        # The releases wait for cluster DNS: the autoscaler (and any chart that calls an AWS or
        # in-cluster endpoint at start) would crash-loop inside Helm's atomic wait without it.
        self.addons = ClusterAddons(
            f"{name}-addons",
            ClusterAddonsArgs(
                args.node_pools,
                args.addons,
                autoscaler_values=values,
                karpenter_values=chart_values(name, min(hosts, 2)) if karpenter else None,
            ),
            opts=pulumi.ResourceOptions(
                parent=self, provider=self.provider, depends_on=[*identities, scheduled["coredns"]]
            ),
        )
        if karpenter is not None:
            launched = [p for p in args.node_pools if p.karpenter]
            karpenter.node_pools(
                launched,
                {p.name: self._subnets(p, args) for p in launched},
                [args.node_security_group_id, cluster_sg],
                pulumi.ResourceOptions(
                    provider=self.provider, depends_on=[self.addons.releases["karpenter"], karpenter.access]
                ),
            )
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "endpoint": self.endpoint,
                "kubeconfig": self.kubeconfig,
                "oidc_provider_arn": self.oidc_provider_arn,
            }
        )

    @staticmethod
    def _subnets(pool: NodePoolArgs, args: EksClusterArgs) -> list[pulumi.Input[str]]:
        """A pool naming its zone runs in that zone's subnet; an EFA or placement-group pool in one subnet."""
        if pool.zone:
            return [args.zone_subnets[pool.zone]]
        return list(args.subnet_ids[:1]) if pool.efa or pool.placement_group else list(args.subnet_ids)

    def _addon(
        self, name: str, addon: str, cluster: aws.eks.Cluster, tags: Mapping[str, str], after: list[pulumi.Resource]
    ) -> aws.eks.Addon:
        return aws.eks.Addon(
            f"{name}-{addon}",
            cluster_name=cluster.name,
            addon_name=addon,
            configuration_values=json.dumps(ADDON_CONFIGURATION[addon]) if addon in ADDON_CONFIGURATION else None,
            pod_identity_associations=[
                {"role_arn": self.iam.addon_roles[addon].arn, "service_account": ADDON_ROLES[addon][0]}
            ]
            if addon in ADDON_ROLES
            else None,
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=named(tags, f"{name}-{addon}"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=after),
        )
