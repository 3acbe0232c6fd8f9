"""Security rules for AWS storage and compute: S3, EKS, EC2 instances and volumes, security groups, FSx, EFS.

Each rule names, as data, every resource type that carries its concept: the legacy and V2 variants of a
resource, the provider's default resources, the other ways to launch an instance (launch configurations,
spot requests and fleets), account-wide defaults and inline blocks. tests/test_policy_types.py checks
every one against the types the installed provider SDK registers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from meshstack.core.resources import ResourceView
from meshstack.policies.rule import (
    OPEN_CIDRS,
    Finding,
    RuleSet,
    Undecided,
    as_list,
    as_map,
    get,
    integer,
    is_false,
    is_open,
    is_true,
    text,
)
from meshstack.policies.values import Unknown

BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
ACCOUNT_PUBLIC_ACCESS_BLOCK = "aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock"
SSE_TYPES = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
BLOCK_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
EKS_CLUSTER = "aws:eks/cluster:Cluster"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE = "aws:ec2/instance:Instance"
LAUNCH_CONFIGURATION = "aws:ec2/launchConfiguration:LaunchConfiguration"
SPOT_INSTANCE = "aws:ec2/spotInstanceRequest:SpotInstanceRequest"
SPOT_FLEET = "aws:ec2/spotFleetRequest:SpotFleetRequest"
METADATA_DEFAULTS = "aws:ec2/instanceMetadataDefaults:InstanceMetadataDefaults"
EBS_VOLUME = "aws:ebs/volume:Volume"
EBS_DEFAULT = "aws:ebs/encryptionByDefault:EncryptionByDefault"
# Everything that launches instances with their own metadata options, and the account-wide default.
IMDS_TYPES = (LAUNCH_TEMPLATE, INSTANCE, LAUNCH_CONFIGURATION, SPOT_INSTANCE, METADATA_DEFAULTS)
# Everything that declares an EBS volume: a template's mappings, an instance's devices, a spot fleet's
# launch specifications, a standalone volume.
EBS_TYPES = (LAUNCH_TEMPLATE, INSTANCE, LAUNCH_CONFIGURATION, SPOT_INSTANCE, SPOT_FLEET, EBS_VOLUME)
SG_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SG_TYPES = (
    SG_INGRESS_RULE,
    SG_RULE,
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
)
LUSTRE = "aws:fsx/lustreFileSystem:LustreFileSystem"
FSX_TYPES = (
    LUSTRE,
    "aws:fsx/ontapFileSystem:OntapFileSystem",
    "aws:fsx/openZfsFileSystem:OpenZfsFileSystem",
    "aws:fsx/windowsFileSystem:WindowsFileSystem",
)


def _bucket_keys(bucket: ResourceView) -> set[str]:
    """A bucket's sub-resources name it by its id (= its name); either counts."""
    return {v for v in (bucket.props.get("id"), bucket.props.get("bucket")) if isinstance(v, str) and v}


def _names(sub: ResourceView, bucket: ResourceView) -> bool | None:
    """Whether a sub-resource belongs to the bucket: by the name it gives, or (while that name is still
    unknown, in the preview of a new stack) by depending on the bucket. None: cannot tell."""
    named = sub.props.get("bucket")
    if isinstance(named, Unknown):
        return True if bucket.urn in sub.dependencies else (None if not sub.dependencies else False)
    return isinstance(named, str) and named in _bucket_keys(bucket)


def _companions(resources: Sequence[ResourceView], types: Sequence[str], bucket: ResourceView) -> list[ResourceView]:
    return [r for r in resources if r.type in types and _names(r, bucket)]


def _flags_off(block: ResourceView) -> tuple[list[str], list[str]]:
    """(flags off, flags unknown) of a public access block."""
    off = [f for f in BLOCK_FLAGS if not isinstance(block.props.get(f), Unknown) and not is_true(block.props.get(f))]
    return off, [f for f in BLOCK_FLAGS if isinstance(block.props.get(f), Unknown)]


ALL_PROTOCOLS = ("-1", "all")

RULES = RuleSet()


@RULES.rule(
    id="MS-AWS-001",
    name="s3-public-access-blocked",
    description="S3 buckets block every form of public access, and no public access block (a bucket's or "
    "the account's) leaves a flag off.",
    severity="critical",
    enforcement="mandatory",
    kind="stack",
    resource_types=(*BUCKET_TYPES, PUBLIC_ACCESS_BLOCK, ACCOUNT_PUBLIC_ACCESS_BLOCK),
    remediation="Give the bucket an aws.s3.BucketPublicAccessBlock (or the account an "
    "aws.s3.AccountPublicAccessBlock) with all four flags true (meshstack's Storage component does this).",
)
def s3_public_access_blocked(
    resources: Sequence[ResourceView], config: Mapping[str, Any]
) -> Iterable[Finding | Undecided]:
    """Every block stands on its own (a block with a flag off is a violation wherever it is), and every bucket
    has one: its own, or the account's with all four flags on."""
    account_blocked = False
    for block in (r for r in resources if r.type in (PUBLIC_ACCESS_BLOCK, ACCOUNT_PUBLIC_ACCESS_BLOCK)):
        off, unknown = _flags_off(block)
        scope = "the account's" if block.type == ACCOUNT_PUBLIC_ACCESS_BLOCK else f"'{block.name}'"
        if off:
            yield Finding(f"public access block {scope} leaves {', '.join(off)} off", block.urn)
        elif unknown:
            yield Undecided(f"public access block {scope}: {', '.join(unknown)} unknown", block.urn)
        elif block.type == ACCOUNT_PUBLIC_ACCESS_BLOCK:
            account_blocked = True
    for bucket in (r for r in resources if r.type in BUCKET_TYPES):
        if account_blocked:
            continue
        blocks = [r for r in resources if r.type == PUBLIC_ACCESS_BLOCK]
        owners = [_names(b, bucket) for b in blocks]
        if not any(owners):
            if None in owners:
                yield Undecided(f"bucket '{bucket.name}': which public access block is its own is unknown", bucket.urn)
            else:
                yield Finding(f"bucket '{bucket.name}' has no public access block", bucket.urn)


def _inline_algorithms(bucket: ResourceView) -> list[Any]:
    """The default-encryption algorithms a bucket declares inline: one block on Bucket, a list on BucketV2."""
    configs = [
        *as_list(bucket.props.get("serverSideEncryptionConfiguration")),
        *as_list(bucket.props.get("serverSideEncryptionConfigurations")),
    ]
    return [
        get(default, "sseAlgorithm")
        for c in configs
        for rule in [*as_list(get(c, "rule")), *as_list(get(c, "rules"))]
        for default in [
            *as_list(get(rule, "applyServerSideEncryptionByDefault")),
            *as_list(get(rule, "applyServerSideEncryptionByDefaults")),
        ]
    ]


@RULES.rule(
    id="MS-AWS-002",
    name="s3-encrypted",
    description="S3 buckets encrypt objects by default with KMS.",
    severity="high",
    enforcement="mandatory",
    kind="stack",
    resource_types=(*BUCKET_TYPES, *SSE_TYPES),
    config={
        "allow_sse_s3": {
            "type": "boolean",
            "default": False,
            "description": "Accept SSE-S3 (AES256) as well as SSE-KMS.",
        }
    },
    remediation="Add an aws.s3.BucketServerSideEncryptionConfiguration with sse_algorithm 'aws:kms'.",
)
def s3_encrypted(resources: Sequence[ResourceView], config: Mapping[str, Any]) -> Iterable[Finding | Undecided]:
    allowed = {"aws:kms", "aws:kms:dsse"} | ({"AES256"} if config["allow_sse_s3"] else set())
    for bucket in (r for r in resources if r.type in BUCKET_TYPES):
        rules = [rule for sse in _companions(resources, SSE_TYPES, bucket) for rule in as_list(sse.props.get("rules"))]
        algorithms = [
            *(get(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm") for rule in rules),
            *_inline_algorithms(bucket),
        ]
        if any(a in allowed for a in algorithms):
            continue
        if any(isinstance(a, Unknown) for a in algorithms):
            yield Undecided(f"bucket '{bucket.name}': its default encryption algorithm is unknown", bucket.urn)
            continue
        found = ", ".join(sorted({a for a in algorithms if isinstance(a, str) and a})) or "none"
        yield Finding(
            f"bucket '{bucket.name}' default encryption is {found}; required: {' or '.join(sorted(allowed))}",
            bucket.urn,
        )


@RULES.rule(
    id="MS-AWS-003",
    name="eks-secrets-encrypted",
    description="EKS clusters encrypt Kubernetes secrets with a KMS key.",
    severity="high",
    enforcement="mandatory",
    resource_types=(EKS_CLUSTER,),
    remediation="Set encryption_config={'provider': {'key_arn': <KMS key ARN>}, 'resources': ['secrets']}.",
)
def eks_secrets_encrypted(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str | Undecided]:
    encryption = as_map(resource.props.get("encryptionConfig"))
    key = get(encryption, "provider", "keyArn")
    if isinstance(key, Unknown) and "secrets" in as_list(get(encryption, "resources")):
        return  # a key ARN still to be created is a key
    if "secrets" not in as_list(get(encryption, "resources")) or not key:
        yield f"cluster '{resource.name}' does not encrypt Kubernetes secrets with a KMS key"


@RULES.rule(
    id="MS-AWS-004",
    name="eks-endpoint-restricted",
    description="The EKS API endpoint is private, or public only to listed CIDRs.",
    severity="high",
    enforcement="mandatory",
    resource_types=(EKS_CLUSTER,),
    remediation="Leave the cluster's public_access_cidrs empty (private endpoint) or list your office or VPN "
    "CIDRs; never 0.0.0.0/0.",
)
def eks_endpoint_restricted(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str | Undecided]:
    vpc = as_map(resource.props.get("vpcConfig"))
    public = get(vpc, "endpointPublicAccess", default=True)
    if is_false(public):
        return
    cidrs = as_list(get(vpc, "publicAccessCidrs"))
    if isinstance(public, Unknown) or any(isinstance(c, Unknown) for c in cidrs):
        yield Undecided(f"cluster '{resource.name}': whether its endpoint is public, and to whom, is unknown")
    elif not cidrs or any(c in OPEN_CIDRS or is_open(c) for c in cidrs):
        yield f"cluster '{resource.name}' API endpoint is public to the whole internet"


@RULES.rule(
    id="MS-AWS-005",
    name="eks-control-plane-logging",
    description="EKS clusters send their control-plane logs to CloudWatch.",
    severity="medium",
    enforcement="mandatory",
    resource_types=(EKS_CLUSTER,),
    config={
        "required_log_types": {
            "type": "array",
            "items": {"type": "string"},
            "default": ["api", "audit", "authenticator"],
        }
    },
    remediation="Add the missing types to the cluster's log_types (default: all five).",
)
def eks_logging(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    enabled = {t for t in as_list(resource.props.get("enabledClusterLogTypes")) if isinstance(t, str)}
    missing = [str(t) for t in config["required_log_types"] if t not in enabled]
    if missing:
        yield f"cluster '{resource.name}' does not send control-plane logs: {', '.join(missing)}"


@RULES.rule(
    id="MS-AWS-006",
    name="imdsv2-required",
    description="Instances, however they are launched, and the account's metadata default require IMDSv2 "
    "tokens (or turn the metadata endpoint off).",
    severity="high",
    enforcement="mandatory",
    resource_types=IMDS_TYPES,
    remediation="Set metadata_options={'http_tokens': 'required', 'http_put_response_hop_limit': 1}.",
)
def imdsv2_required(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str | Undecided]:
    """IMDSv1 is possible only where the metadata endpoint is on; a disabled endpoint serves neither version."""
    options = resource.props if resource.type == METADATA_DEFAULTS else as_map(resource.props.get("metadataOptions"))
    endpoint, tokens = get(options, "httpEndpoint"), get(options, "httpTokens")
    if text(endpoint).lower() == "disabled":
        return
    if resource.type == METADATA_DEFAULTS:
        if text(tokens).lower() == "optional":
            yield f"the account's instance metadata default '{resource.name}' allows IMDSv1 (httpTokens 'optional')"
        return
    if isinstance(tokens, Unknown) or isinstance(endpoint, Unknown):
        yield Undecided(f"'{resource.name}': its metadata options are unknown")
    elif text(tokens).lower() != "required":
        yield f"'{resource.name}' allows IMDSv1 (metadataOptions.httpTokens is not 'required')"


def _template_volumes(props: Mapping[str, Any]) -> list[Any] | None:
    """A launch template's EBS volumes (a mapping's `ebs` block); a mapping that names an instance-store
    volume (`virtualName`) or suppresses a device (`noDevice`) declares no EBS volume. None: no mapping."""
    mappings = as_list(props.get("blockDeviceMappings"))
    if not mappings:
        return None
    return [
        get(m, "ebs", default={})
        for m in mappings
        if get(m, "ebs") is not None or not (get(m, "virtualName") or get(m, "noDevice") is not None)
    ]


def _instance_volumes(props: Mapping[str, Any], root: str = "rootBlockDevice") -> list[Any]:
    """An instance's root volume (declared or the AMI's) and its extra EBS volumes; ephemeral devices are
    instance store."""
    roots = as_list(props.get(root)) or [{}]
    return [*roots, *(d for d in as_list(props.get("ebsBlockDevices")) if get(d, "noDevice") is not True)]


def _volumes(resource: ResourceView) -> list[Any] | None:
    props = resource.props
    if resource.type == EBS_VOLUME:
        return [props]
    if resource.type == SPOT_FLEET:
        return [
            v
            for spec in as_list(props.get("launchSpecifications"))
            for v in _instance_volumes(as_map(spec), "rootBlockDevices")
        ]
    if resource.type == LAUNCH_TEMPLATE:
        return _template_volumes(props)
    return _instance_volumes(props)


@RULES.rule(
    id="MS-AWS-007",
    name="ebs-volumes-encrypted",
    description="Every EBS volume is encrypted: those instances, launch templates, launch configurations "
    "and spot requests declare, and standalone volumes (unless the stack turns on EBS encryption by default).",
    severity="high",
    enforcement="mandatory",
    kind="stack",
    resource_types=(*EBS_TYPES, EBS_DEFAULT),
    remediation="Declare the root volume in block_device_mappings with ebs.encrypted 'true' (a volume: "
    "encrypted=True), or turn on aws.ebs.EncryptionByDefault for the account and region.",
)
def volumes_encrypted(resources: Sequence[ResourceView], config: Mapping[str, Any]) -> Iterable[Finding | Undecided]:
    """Every EBS volume a stack declares, wherever: with the account's encryption by default on (an
    aws.ebs.EncryptionByDefault of this stack), EC2 encrypts every new volume whatever it says."""
    defaults = [r.props.get("enabled", True) for r in resources if r.type == EBS_DEFAULT]
    if any(d is True for d in defaults):
        return
    for resource in (r for r in resources if r.type in EBS_TYPES):
        volumes = _volumes(resource)
        if volumes is None:
            yield Finding(
                f"'{resource.name}' does not set its root volume: the AMI's unencrypted default applies", resource.urn
            )
            continue
        flags = [get(v, "encrypted") for v in volumes]
        if any(not is_true(f) and not isinstance(f, Unknown) for f in flags):
            what = (
                "is an unencrypted EBS volume"
                if resource.type == EBS_VOLUME
                else "has an EBS volume without encryption"
            )
            yield Finding(f"'{resource.name}' {what}", resource.urn)
        elif any(isinstance(f, Unknown) for f in flags):
            yield Undecided(f"'{resource.name}': whether its volumes are encrypted is unknown", resource.urn)


def _ports_allowed(low: Any, high: Any, protocol: str, allowed: set[int]) -> bool:
    """Whether every port of low..high is one the config allows (never for all protocols or no ports)."""
    first, last = integer(low), integer(high)
    if protocol in ALL_PROTOCOLS or first is None or last is None or first > last or first < 0:
        return False
    return last - first < len(allowed) and all(p in allowed for p in range(first, last + 1))


def _rules(resource: ResourceView) -> list[tuple[list[Any], Any, Any, str]]:
    """(CIDRs, from port, to port, protocol) for each ingress rule the resource declares."""
    props = resource.props
    if resource.type == SG_INGRESS_RULE:
        cidrs = [props.get("cidrIpv4"), props.get("cidrIpv6")]
        return [(cidrs, props.get("fromPort"), props.get("toPort"), text(props.get("ipProtocol")).lower())]
    if resource.type == SG_RULE:
        if text(props.get("type")) != "ingress":
            return []
        cidrs = [*as_list(props.get("cidrBlocks")), *as_list(props.get("ipv6CidrBlocks"))]
        return [(cidrs, props.get("fromPort"), props.get("toPort"), text(props.get("protocol")).lower())]
    return [
        (
            [*as_list(get(rule, "cidrBlocks")), *as_list(get(rule, "ipv6CidrBlocks"))],
            get(rule, "fromPort"),
            get(rule, "toPort"),
            text(get(rule, "protocol")).lower(),
        )
        for rule in as_list(props.get("ingress"))
    ]


def _ports(low: Any, high: Any, protocol: str) -> str:
    if protocol in ALL_PROTOCOLS:
        return "all ports"
    first, last = integer(low), integer(high)
    if first is None or last is None:
        return f"all ports/{protocol or '?'}"
    return f"ports {first}-{last}/{protocol}"


@RULES.rule(
    id="MS-AWS-008",
    name="security-group-no-public-ingress",
    description="No security group admits 0.0.0.0/0 or ::/0, except on ports the config allows.",
    severity="critical",
    enforcement="mandatory",
    resource_types=SG_TYPES,
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
)
def no_public_ingress(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str | Undecided]:
    allowed = {p for p in (integer(p) for p in config["allowed_ports"]) if p is not None}
    for cidrs, low, high, protocol in _rules(resource):
        opened = [str(c) for c in cidrs if is_open(c)]
        if opened and not _ports_allowed(low, high, protocol, allowed):
            yield f"'{resource.name}' admits {', '.join(opened)} on {_ports(low, high, protocol)}"
        elif not opened and any(isinstance(c, Unknown) for c in cidrs):
            yield Undecided(f"'{resource.name}': the CIDR it admits is unknown")


@RULES.rule(
    id="MS-AWS-011",
    name="fsx-encrypted",
    description="FSx file systems (persistent Lustre, ONTAP, OpenZFS, Windows) use a customer-managed KMS key.",
    severity="high",
    enforcement="mandatory",
    resource_types=FSX_TYPES,
    config={"require_customer_key": {"type": "boolean", "default": True}},
    remediation="Set kms_key_id to the stack's storage key.",
)
def fsx_encrypted(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    """Scratch Lustre cannot take a customer key (AWS encrypts it with its own); every other FSx can."""
    if resource.type == LUSTRE and not text(resource.props.get("deploymentType")).startswith("PERSISTENT"):
        return
    if config["require_customer_key"] and not resource.props.get("kmsKeyId"):
        yield f"FSx file system '{resource.name}' is not encrypted with a customer-managed KMS key"


@RULES.rule(
    id="MS-AWS-012",
    name="efs-encrypted",
    description="EFS file systems are encrypted at rest.",
    severity="high",
    enforcement="mandatory",
    resource_types=("aws:efs/fileSystem:FileSystem",),
    remediation="Set encrypted=True and kms_key_id.",
)
def efs_encrypted(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str | Undecided]:
    encrypted = resource.props.get("encrypted")
    if isinstance(encrypted, Unknown):
        yield Undecided(f"EFS '{resource.name}': encryption unknown")
    elif not is_true(encrypted):
        yield f"EFS '{resource.name}' is not encrypted at rest"
