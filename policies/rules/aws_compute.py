"""AWS compute: the EKS control plane (secrets encrypted, endpoint restricted, logs sent), and instances
however they are launched (IMDSv2, encrypted EBS volumes).

Each rule names, as data, every resource type that carries its concept: the legacy and V2 variants of a
resource, the provider's default resources, the other ways to launch an instance (launch configurations,
spot requests and fleets), account-wide defaults and inline blocks. tests/policies/test_policy_types.py checks
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
    is_false,
    is_open,
    is_true,
    text,
)
from meshstack.policies.values import Unknown

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

RULES = RuleSet()


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
