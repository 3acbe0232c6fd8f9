"""The roles a cluster needs, and least-privilege roles for the service accounts that run on it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from meshstack.components.tags import named

# Exactly what a managed node needs: join the cluster and pull from ECR. The VPC CNI's rights live on
# its own Pod Identity role, not on every node (EKS best practices, "IAM: update the aws-node role").
NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly")
# The add-ons that call AWS APIs, each on its own EKS Pod Identity role: its service account and
# AWS managed policies.
ADDON_ROLES = {
    "vpc-cni": ("aws-node", ("AmazonEKS_CNI_Policy",)),
    "aws-ebs-csi-driver": ("ebs-csi-controller-sa", ("service-role/AmazonEBSCSIDriverPolicy",)),
}
CLUSTER_POLICIES = ("AmazonEKSClusterPolicy",)


def partition(region: str) -> str:
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws"


@dataclass(frozen=True)
class Deployer:
    """Who runs the program: its account, and its IAM role or user (an assumed role's session resolved
    to the role, as access entries name it)."""

    account: str
    principal_arn: str


def deployer() -> Deployer:
    """Looked up with two blocking data-source calls: a program asks once and hands the answer to its
    components (each blocking call pumps the whole event loop)."""
    caller = aws.get_caller_identity()
    return Deployer(caller.account_id, aws.iam.get_session_context(arn=caller.arn).issuer_arn)


def assume_role_policy(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": ["sts:AssumeRole", "sts:TagSession"]}
            ],
        }
    )


def web_identity_policy(provider_arn: str, issuer_url: str, namespace: str, service_account: str) -> str:
    """Trust exactly one Kubernetes service account, through the cluster's OIDC issuer."""
    issuer = issuer_url.removeprefix("https://")
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                            f"{issuer}:aud": "sts.amazonaws.com",
                        }
                    },
                }
            ],
        }
    )


def object_arns(bucket_arn: str, prefix: str) -> list[str]:
    """The objects under a prefix (and the key the prefix itself names, which clients HEAD as a folder)."""
    prefix = prefix.strip("/")
    return [f"{bucket_arn}/{prefix}", f"{bucket_arn}/{prefix}/*"] if prefix else [f"{bucket_arn}/*"]


def bucket_access_policy(
    scopes: Sequence[tuple[str, str]], kms_key_arns: Sequence[str], read_only: bool = False
) -> str:
    """Read (and unless read_only, write) and list the objects under each (bucket ARN, prefix) and use
    the buckets' keys; nothing else. An empty prefix is the whole bucket."""
    statements: list[dict[str, object]] = []
    for i, (arn, prefix) in enumerate(scopes):
        prefix = prefix.strip("/")
        listing: dict[str, object] = {
            "Sid": f"List{i}",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
            "Resource": [arn],
        }
        if prefix:
            listing["Condition"] = {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}}
        statements.append(listing)
    statements.append(
        {
            "Sid": "ObjectAccess",
            "Effect": "Allow",
            "Action": ["s3:GetObject"]
            if read_only
            else ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            "Resource": [a for arn, prefix in scopes for a in object_arns(arn, prefix)],
        }
    )
    if kms_key_arns:
        statements.append(
            {
                "Sid": "BucketKeys",
                "Effect": "Allow",
                "Action": ["kms:Decrypt"] if read_only else ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": list(kms_key_arns),
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


AUTOSCALER_READS = (
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLaunchConfigurations",
    "autoscaling:DescribeScalingActivities",
    "autoscaling:DescribeTags",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:GetInstanceTypesFromInstanceRequirements",
    "eks:DescribeNodegroup",
)
AUTOSCALER_WRITES = ("autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup")


def autoscaler_policy(cluster_name: str) -> str:
    """The cluster-autoscaler's recommended policy (kubernetes/autoscaler, cloudprovider/aws/README.md):
    it reads every group, but resizes only groups tagged as this cluster's (managed node groups carry
    the tag), so it cannot touch another cluster's nodes."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": list(AUTOSCALER_READS), "Resource": "*"},
                {
                    "Effect": "Allow",
                    "Action": list(AUTOSCALER_WRITES),
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"}
                    },
                },
            ],
        }
    )


@dataclass(frozen=True)
class ClusterIamArgs:
    region: str
    """The cluster's region, which the roles' trust and policies name."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags every role and policy gets."""


class ClusterIam(pulumi.ComponentResource):
    """Cluster and node roles, and (once the cluster exists) its OIDC provider for IRSA."""

    cluster_role_arn: pulumi.Output[str]
    node_role_arn: pulumi.Output[str]
    node_role_name: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterIamArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshstack:aws:ClusterIam", name, None, opts)
        self._name = name
        self._tags = dict(args.tags)
        self._partition = partition(args.region)
        self._roles: ServiceAccountRoles | None = None
        cluster_role = self._service_role("cluster", "eks.amazonaws.com", CLUSTER_POLICIES)
        node_role = self._service_role("node", "ec2.amazonaws.com", NODE_POLICIES)
        self.addon_roles = {
            addon: self._service_role(addon, "pods.eks.amazonaws.com", policies)
            for addon, (_, policies) in ADDON_ROLES.items()
        }
        self.cluster_role_arn = cluster_role.arn
        self.node_role_arn = node_role.arn
        self.node_role_name = node_role.name
        self.register_outputs({"cluster_role_arn": self.cluster_role_arn, "node_role_arn": self.node_role_arn})

    def _service_role(self, role: str, service: str, policies: Sequence[str]) -> aws.iam.Role:
        child = pulumi.ResourceOptions(parent=self)
        resource = aws.iam.Role(
            f"{self._name}-{role}",
            assume_role_policy=assume_role_policy(service),
            tags=named(self._tags, f"{self._name}-{role}"),
            opts=child,
        )
        for policy in policies:
            aws.iam.RolePolicyAttachment(
                f"{self._name}-{role}-{policy.rsplit('/', 1)[-1]}",
                role=resource.name,
                policy_arn=f"arn:{self._partition}:iam::aws:policy/{policy}",
                opts=child,
            )
        return resource

    def node_role(self, role: str) -> aws.iam.Role:
        """Another role for nodes, with exactly what the managed nodes' has (Karpenter's nodes join under their
        own: a managed node group makes the access entry of its role itself)."""
        return self._service_role(role, "ec2.amazonaws.com", NODE_POLICIES)

    def pod_identity_role(self, role: str, policy: pulumi.Input[str]) -> aws.iam.Role:
        """A role for an EKS Pod Identity association (the cluster runs the pod identity agent)."""
        child = pulumi.ResourceOptions(parent=self)
        resource = aws.iam.Role(
            f"{self._name}-{role}",
            assume_role_policy=assume_role_policy("pods.eks.amazonaws.com"),
            tags=named(self._tags, f"{self._name}-{role}"),
            opts=child,
        )
        aws.iam.RolePolicy(f"{self._name}-{role}", role=resource.id, policy=policy, opts=child)
        return resource

    def add_oidc_provider(self, issuer_url: pulumi.Input[str]) -> pulumi.Output[str]:
        """Register the cluster's OIDC issuer with IAM so service accounts can assume roles."""
        issuer = pulumi.Output.from_input(issuer_url)
        oidc = aws.iam.OpenIdConnectProvider(
            f"{self._name}-oidc",
            url=issuer,
            client_id_lists=["sts.amazonaws.com"],
            tags=named(self._tags, f"{self._name}-oidc"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._roles = ServiceAccountRoles(self._name, self, oidc.arn, issuer, self._tags)
        return oidc.arn

    def service_account_role(
        self,
        name: str,
        namespace: str,
        service_account: str,
        scopes: Sequence[tuple[pulumi.Input[str], str]],
        kms_key_arns: Sequence[pulumi.Input[str]] = (),
        read_only: bool = False,
    ) -> aws.iam.Role:
        if self._roles is None:
            raise RuntimeError("add_oidc_provider must run before service_account_role")
        return self._roles.service_account_role(name, namespace, service_account, scopes, kms_key_arns, read_only)


class ServiceAccountRoles:
    """IRSA roles trusting one cluster's OIDC issuer through its IAM OIDC provider: the one a stack's own
    cluster registers, or the one an existing cluster's owners registered."""

    def __init__(
        self,
        prefix: str,
        parent: pulumi.Resource,
        provider_arn: pulumi.Input[str],
        issuer_url: pulumi.Input[str],
        tags: Mapping[str, str],
    ) -> None:
        self._prefix, self._tags = prefix, dict(tags)
        self._child = pulumi.ResourceOptions(parent=parent)
        self._provider_arn = pulumi.Output.from_input(provider_arn)
        self._issuer = pulumi.Output.from_input(issuer_url)

    def service_account_role(
        self,
        name: str,
        namespace: str,
        service_account: str,
        scopes: Sequence[tuple[pulumi.Input[str], str]],
        kms_key_arns: Sequence[pulumi.Input[str]] = (),
        read_only: bool = False,
    ) -> aws.iam.Role:
        """A role only `namespace/service_account` can assume, allowed only under the (bucket ARN, prefix)
        scopes it is given."""
        trust = pulumi.Output.all(self._provider_arn, self._issuer).apply(
            lambda a: web_identity_policy(a[0], a[1], namespace, service_account)
        )
        role = aws.iam.Role(
            f"{self._prefix}-sa-{name}",
            assume_role_policy=trust,
            tags=named(self._tags, f"{self._prefix}-sa-{name}"),
            opts=self._child,
        )
        prefixes = [prefix for _, prefix in scopes]
        policy = pulumi.Output.all(
            pulumi.Output.all(*(arn for arn, _ in scopes)), pulumi.Output.all(*kms_key_arns)
        ).apply(lambda a: bucket_access_policy(list(zip(a[0], prefixes, strict=True)), a[1], read_only))
        aws.iam.RolePolicy(f"{self._prefix}-sa-{name}", role=role.id, policy=policy, opts=self._child)
        return role
