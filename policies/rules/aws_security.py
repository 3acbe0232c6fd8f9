"""Security rules for the AWS resources a stack declares: S3, EKS, EC2, IAM, FSx and EFS."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from meshstack.core.resources import ResourceView
from policies.rule import OPEN_CIDRS, Finding, Rule, as_list, get, is_open, policy_statements

BUCKET = "aws:s3/bucket:Bucket"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
SSE_CONFIG = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
BLOCK_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
EKS_CLUSTER = "aws:eks/cluster:Cluster"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE = "aws:ec2/instance:Instance"
ADMIN_POLICIES = ["AdministratorAccess", "PowerUserAccess", "IAMFullAccess"]


def _bucket_keys(bucket: ResourceView) -> set[str]:
    """A bucket's sub-resources name it by its id (= its name); either counts."""
    return {str(v) for v in (bucket.props.get("id"), bucket.props.get("bucket")) if v}


def _companions(resources: Sequence[ResourceView], typ: str, bucket: ResourceView) -> list[ResourceView]:
    keys = _bucket_keys(bucket)
    return [r for r in resources if r.type == typ and str(r.props.get("bucket")) in keys]


def s3_public_access_blocked(resources: Sequence[ResourceView], config: Mapping[str, Any]) -> Iterable[Finding]:
    for bucket in (r for r in resources if r.type == BUCKET):
        blocks = _companions(resources, PUBLIC_ACCESS_BLOCK, bucket)
        if not blocks:
            yield Finding(f"bucket '{bucket.name}' has no public access block", bucket.urn)
        for block in blocks:
            off = [flag for flag in BLOCK_FLAGS if block.props.get(flag) is not True]
            if off:
                yield Finding(f"bucket '{bucket.name}': public access block leaves {', '.join(off)} off", block.urn)


def s3_encrypted(resources: Sequence[ResourceView], config: Mapping[str, Any]) -> Iterable[Finding]:
    allowed = {"aws:kms", "aws:kms:dsse"} | ({"AES256"} if config["allow_sse_s3"] else set())
    for bucket in (r for r in resources if r.type == BUCKET):
        rules = [rule for sse in _companions(resources, SSE_CONFIG, bucket) for rule in as_list(sse.props.get("rules"))]
        algorithms = {get(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm") for rule in rules}
        if not algorithms & allowed:
            found = ", ".join(sorted(a for a in algorithms if a)) or "none"
            yield Finding(
                f"bucket '{bucket.name}' default encryption is {found}; required: {' or '.join(sorted(allowed))}",
                bucket.urn,
            )


def eks_secrets_encrypted(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    encryption = resource.props.get("encryptionConfig")
    if "secrets" not in as_list(get(encryption, "resources")) or not get(encryption, "provider", "keyArn"):
        yield f"cluster '{resource.name}' does not encrypt Kubernetes secrets with a KMS key"


def eks_endpoint_restricted(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    vpc = resource.props.get("vpcConfig") or {}
    if get(vpc, "endpointPublicAccess", default=True) is False:
        return
    cidrs = [str(c) for c in as_list(get(vpc, "publicAccessCidrs"))]
    if not cidrs or any(c in OPEN_CIDRS for c in cidrs):
        yield f"cluster '{resource.name}' API endpoint is public to the whole internet"


def eks_logging(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    enabled = {str(t) for t in as_list(resource.props.get("enabledClusterLogTypes"))}
    missing = [t for t in config["required_log_types"] if t not in enabled]
    if missing:
        yield f"cluster '{resource.name}' does not send control-plane logs: {', '.join(missing)}"


def imdsv2_required(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    if get(resource.props, "metadataOptions", "httpTokens") != "required":
        yield f"'{resource.name}' allows IMDSv1 (metadataOptions.httpTokens is not 'required')"


def volumes_encrypted(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    if resource.type == INSTANCE:
        devices = [get(resource.props, "rootBlockDevice") or {}, *as_list(resource.props.get("ebsBlockDevices"))]
        flags = [get(d, "encrypted") for d in devices]
    else:
        flags = [get(m, "ebs", "encrypted") for m in as_list(resource.props.get("blockDeviceMappings"))]
        if not flags:
            yield f"'{resource.name}' does not set its root volume: the AMI's unencrypted default applies"
    for flag in flags:
        if flag not in (True, "true"):
            yield f"'{resource.name}' has an EBS volume without encryption"


def _ports_allowed(low: Any, high: Any, protocol: str, allowed: Sequence[int]) -> bool:
    if protocol in ("-1", "all") or low is None or high is None:
        return False
    return set(range(int(low), int(high) + 1)) <= set(allowed)


def no_public_ingress(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    props, allowed = resource.props, [int(p) for p in config["allowed_ports"]]
    rules: list[tuple[list[Any], Any, Any, str]] = []
    if resource.type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        rules.append(
            (
                [props.get("cidrIpv4"), props.get("cidrIpv6")],
                props.get("fromPort"),
                props.get("toPort"),
                str(props.get("ipProtocol")),
            )
        )
    elif resource.type == "aws:ec2/securityGroupRule:SecurityGroupRule" and props.get("type") == "ingress":
        rules.append(
            (
                [*as_list(props.get("cidrBlocks")), *as_list(props.get("ipv6CidrBlocks"))],
                props.get("fromPort"),
                props.get("toPort"),
                str(props.get("protocol")),
            )
        )
    elif resource.type == "aws:ec2/securityGroup:SecurityGroup":
        for rule in as_list(props.get("ingress")):
            rules.append(
                (
                    [*as_list(get(rule, "cidrBlocks")), *as_list(get(rule, "ipv6CidrBlocks"))],
                    get(rule, "fromPort"),
                    get(rule, "toPort"),
                    str(get(rule, "protocol")),
                )
            )
    for cidrs, low, high, protocol in rules:
        opened = [str(c) for c in cidrs if c and is_open(c)]
        if opened and not _ports_allowed(low, high, protocol, allowed):
            ports = "all ports" if protocol in ("-1", "all") else f"ports {int(low)}-{int(high)}/{protocol}"
            yield f"'{resource.name}' admits {', '.join(opened)} on {ports}"


IAM_DOCUMENT_TYPES = (
    "aws:iam/policy:Policy",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/groupPolicy:GroupPolicy",
    "aws:iam/role:Role",
)


def _covers(patterns: set[str], action: str) -> bool:
    """IAM action patterns are case-insensitive globs (`iam:Pass*` covers iam:PassRole)."""
    return any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in patterns)


def iam_no_wildcard_admin(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    if resource.type == "aws:iam/role:Role":
        documents = [get(p, "policy") for p in as_list(resource.props.get("inlinePolicies"))]
    else:
        documents = [resource.props.get("policy")]
    for document in documents:
        for statement in policy_statements(document):
            if statement.get("Effect") != "Allow" or "*" not in {str(r) for r in as_list(statement.get("Resource"))}:
                continue
            actions = {str(a) for a in as_list(statement.get("Action"))}
            if actions & {"*", "*:*"} or statement.get("NotAction") is not None:
                yield f"'{resource.name}' allows every action on every resource ('Action': '*', 'Resource': '*')"
            elif _covers(actions, "iam:PassRole"):
                yield f"'{resource.name}' may pass any role to any service ('iam:PassRole' on 'Resource': '*')"


# Where each attachment type names its principals, and the kind of principal.
ATTACHMENTS = {
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": (("role", "role"),),
    "aws:iam/userPolicyAttachment:UserPolicyAttachment": (("user", "user"),),
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment": (("group", "group"),),
    "aws:iam/policyAttachment:PolicyAttachment": (("roles", "role"), ("users", "user"), ("groups", "group")),
}


def iam_no_admin_attached(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    admin = tuple(f":policy/{name}" for name in config["admin_policies"])
    if resource.type == "aws:iam/role:Role":
        grants = [(f"role '{resource.name}'", str(a)) for a in as_list(resource.props.get("managedPolicyArns"))]
    else:
        arn = str(resource.props.get("policyArn"))
        grants = [
            (f"{kind} '{principal}'", arn)
            for key, kind in ATTACHMENTS[resource.type]
            for principal in as_list(resource.props.get(key))
        ]
    for principal, arn in grants:
        if arn.endswith(admin):
            yield f"{principal} is given the administrator policy {arn.rsplit('/', 1)[-1]}"


def fsx_encrypted(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    persistent = str(resource.props.get("deploymentType", "")).startswith("PERSISTENT")
    if persistent and config["require_customer_key"] and not resource.props.get("kmsKeyId"):
        yield f"FSx for Lustre '{resource.name}' is not encrypted with a customer-managed KMS key"


def efs_encrypted(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    if resource.props.get("encrypted") is not True:
        yield f"EFS '{resource.name}' is not encrypted at rest"


RULES = [
    Rule(
        id="MS-AWS-001",
        name="s3-public-access-blocked",
        description="S3 buckets block every form of public access.",
        severity="critical",
        enforcement="mandatory",
        kind="stack",
        check=s3_public_access_blocked,
        remediation="Give the bucket an aws.s3.BucketPublicAccessBlock with all four flags true "
        "(meshstack's Storage component does this).",
    ),
    Rule(
        id="MS-AWS-002",
        name="s3-encrypted",
        description="S3 buckets encrypt objects by default with KMS.",
        severity="high",
        enforcement="mandatory",
        kind="stack",
        check=s3_encrypted,
        config={
            "allow_sse_s3": {
                "type": "boolean",
                "default": False,
                "description": "Accept SSE-S3 (AES256) as well as SSE-KMS.",
            }
        },
        remediation="Add an aws.s3.BucketServerSideEncryptionConfiguration with sse_algorithm 'aws:kms'.",
    ),
    Rule(
        id="MS-AWS-003",
        name="eks-secrets-encrypted",
        description="EKS clusters encrypt Kubernetes secrets with a KMS key.",
        severity="high",
        enforcement="mandatory",
        resource_types=(EKS_CLUSTER,),
        check=eks_secrets_encrypted,
        remediation="Set encryption_config={'provider': {'key_arn': <KMS key ARN>}, 'resources': ['secrets']}.",
    ),
    Rule(
        id="MS-AWS-004",
        name="eks-endpoint-restricted",
        description="The EKS API endpoint is private, or public only to listed CIDRs.",
        severity="high",
        enforcement="mandatory",
        resource_types=(EKS_CLUSTER,),
        check=eks_endpoint_restricted,
        remediation="Leave the cluster's public_access_cidrs empty (private endpoint) or list your office or VPN "
        "CIDRs; never 0.0.0.0/0.",
    ),
    Rule(
        id="MS-AWS-005",
        name="eks-control-plane-logging",
        description="EKS clusters send their control-plane logs to CloudWatch.",
        severity="medium",
        enforcement="mandatory",
        resource_types=(EKS_CLUSTER,),
        check=eks_logging,
        config={
            "required_log_types": {
                "type": "array",
                "items": {"type": "string"},
                "default": ["api", "audit", "authenticator"],
            }
        },
        remediation="Add the missing types to the cluster's log_types (default: all five).",
    ),
    Rule(
        id="MS-AWS-006",
        name="imdsv2-required",
        description="Instances and launch templates require IMDSv2 tokens.",
        severity="high",
        enforcement="mandatory",
        resource_types=(LAUNCH_TEMPLATE, INSTANCE),
        check=imdsv2_required,
        remediation="Set metadata_options={'http_tokens': 'required', 'http_put_response_hop_limit': 1}.",
    ),
    Rule(
        id="MS-AWS-007",
        name="ebs-volumes-encrypted",
        description="Instances and launch templates encrypt their EBS volumes.",
        severity="high",
        enforcement="mandatory",
        resource_types=(LAUNCH_TEMPLATE, INSTANCE),
        check=volumes_encrypted,
        remediation="Declare the root volume in block_device_mappings with ebs.encrypted 'true'.",
    ),
    Rule(
        id="MS-AWS-008",
        name="security-group-no-public-ingress",
        description="No security group admits 0.0.0.0/0 or ::/0, except on ports the config allows.",
        severity="critical",
        enforcement="mandatory",
        resource_types=(
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
            "aws:ec2/securityGroupRule:SecurityGroupRule",
            "aws:ec2/securityGroup:SecurityGroup",
        ),
        check=no_public_ingress,
        config={
            "allowed_ports": {
                "type": "array",
                "items": {"type": "integer"},
                "default": [],
                "description": "Ports that may be open to the internet (e.g. 443).",
            }
        },
        remediation="Admit traffic from a security group (referenced_security_group_id) or a narrow CIDR, "
        "or list the port in this rule's allowed_ports.",
    ),
    Rule(
        id="MS-AWS-009",
        name="iam-no-wildcard-admin",
        description="No IAM policy grants '*' actions (or iam:PassRole) on '*' resources.",
        severity="critical",
        enforcement="mandatory",
        resource_types=IAM_DOCUMENT_TYPES,
        check=iam_no_wildcard_admin,
        remediation="Name the actions and the resource ARNs the principal needs (see ClusterIam.service_account_role).",
    ),
    Rule(
        id="MS-AWS-010",
        name="iam-no-admin-attached",
        description="No role, user or group (node and workload roles included) is given an administrator policy.",
        severity="critical",
        enforcement="mandatory",
        resource_types=("aws:iam/role:Role", *ATTACHMENTS),
        check=iam_no_admin_attached,
        config={"admin_policies": {"type": "array", "items": {"type": "string"}, "default": ADMIN_POLICIES}},
        remediation="Attach only the actions the principal needs: nodes get AmazonEKSWorkerNodePolicy, "
        "AmazonEKS_CNI_Policy and AmazonEC2ContainerRegistryReadOnly; pods get their own IRSA or Pod Identity roles.",
    ),
    Rule(
        id="MS-AWS-011",
        name="fsx-encrypted",
        description="Persistent FSx for Lustre file systems use a customer-managed KMS key.",
        severity="high",
        enforcement="mandatory",
        resource_types=("aws:fsx/lustreFileSystem:LustreFileSystem",),
        check=fsx_encrypted,
        config={"require_customer_key": {"type": "boolean", "default": True}},
        remediation="Set kms_key_id to the stack's storage key.",
    ),
    Rule(
        id="MS-AWS-012",
        name="efs-encrypted",
        description="EFS file systems are encrypted at rest.",
        severity="high",
        enforcement="mandatory",
        resource_types=("aws:efs/fileSystem:FileSystem",),
        check=efs_encrypted,
        remediation="Set encrypted=True and kms_key_id.",
    ),
]
