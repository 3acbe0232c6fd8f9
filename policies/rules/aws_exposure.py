"""What an AWS stack opens to the internet or to anyone: public S3 grants, internet-facing load balancers,
SSH to node groups from anywhere, security groups that admit 0.0.0.0/0 or ::/0."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from meshstack.core.resources import ResourceView
from meshstack.policies.iam import open_to_anyone
from meshstack.policies.rule import (
    RuleSet,
    Undecided,
    as_list,
    as_map,
    get,
    integer,
    is_open,
    is_true,
    policy_document,
    policy_statements,
    text,
)
from meshstack.policies.rules.aws_storage import BUCKET_TYPES
from meshstack.policies.values import Unknown

BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
ACL_TYPES = ("aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2")
OBJECT_TYPES = (
    "aws:s3/bucketObject:BucketObject",
    "aws:s3/bucketObjectv2:BucketObjectv2",
    "aws:s3/objectCopy:ObjectCopy",
)
PUBLIC_CANNED_ACLS = frozenset({"public-read", "public-read-write", "authenticated-read"})
PUBLIC_GRANTEES = (
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
)
LOAD_BALANCER_TYPES = (
    "aws:lb/loadBalancer:LoadBalancer",
    "aws:alb/loadBalancer:LoadBalancer",
    "aws:elb/loadBalancer:LoadBalancer",
)
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
SG_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SG_TYPES = (
    SG_INGRESS_RULE,
    SG_RULE,
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
)

ALL_PROTOCOLS = ("-1", "all")


def _grantees(resource: ResourceView) -> list[Any]:
    """The grantee URIs of a bucket's inline grants or an ACL's access control policy."""
    props = resource.props
    inline = [get(g, "uri") for g in as_list(props.get("grants"))]
    policy = [get(g, "grantee", "uri") for g in as_list(get(props, "accessControlPolicy", "grants"))]
    return [*inline, *policy]


RULES = RuleSet()


@RULES.rule(
    id="MS-AWS-013",
    name="s3-no-public-grants",
    description="No bucket policy allows any principal, and no bucket or object ACL grants public access.",
    severity="critical",
    enforcement="mandatory",
    resource_types=(*BUCKET_TYPES, BUCKET_POLICY, *ACL_TYPES, *OBJECT_TYPES),
    remediation="Name the principals in the bucket policy (or add a condition on aws:SourceVpce or "
    "aws:PrincipalOrgID), and use the 'private' ACL with BucketOwnerEnforced object ownership.",
)
def s3_no_public_grants(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str | Undecided]:
    """A bucket policy statement that allows anyone, a public canned ACL, or a grant to all (authenticated)
    users: each opens the bucket or object to the world unless a public access block ignores it."""
    props = resource.props
    acl = props.get("acl")
    if isinstance(acl, str) and acl in PUBLIC_CANNED_ACLS:
        yield f"'{resource.name}' has the public canned ACL '{acl}'"
    public = sorted({str(u).rsplit("/", 1)[-1] for u in _grantees(resource) if u in PUBLIC_GRANTEES})
    if public:
        yield f"'{resource.name}' grants access to {', '.join(public)}"
    if resource.type in (BUCKET_POLICY, *BUCKET_TYPES):
        document = props.get("policy")
        if isinstance(policy_document(document), Unknown):
            yield Undecided(f"'{resource.name}': its bucket policy is unknown")
        elif any(open_to_anyone(s) for s in policy_statements(document)):
            yield f"'{resource.name}' has a bucket policy statement that allows any principal ('*')"


@RULES.rule(
    id="MS-AWS-019",
    name="load-balancer-internal",
    description="Elastic load balancers (ALB, NLB, classic) are internal unless allowed.",
    severity="high",
    enforcement="mandatory",
    resource_types=LOAD_BALANCER_TYPES,
    config={
        "allowed_public_load_balancers": {
            "type": "array",
            "items": {"type": "string"},
            "default": [],
            "description": "Names of load balancers that may face the internet.",
        }
    },
    remediation="Set internal=True, or list the load balancer in allowed_public_load_balancers.",
)
def load_balancer_internal(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str | Undecided]:
    internal = resource.props.get("internal")
    name = text(resource.props.get("name")) or resource.name
    if isinstance(internal, Unknown):
        yield Undecided(f"load balancer '{name}': whether it is internal is unknown")
    elif not is_true(internal) and name not in config["allowed_public_load_balancers"]:
        yield f"load balancer '{name}' is internet-facing (internal is not true)"


@RULES.rule(
    id="MS-AWS-018",
    name="eks-node-group-ssh-restricted",
    description="EKS managed node groups with remote access name the security groups SSH may come from.",
    severity="high",
    enforcement="mandatory",
    resource_types=(NODE_GROUP,),
    remediation="Set remote_access.source_security_group_ids to a bastion's group, or drop remote_access and "
    "reach nodes through SSM Session Manager.",
)
def node_group_ssh_restricted(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    """A managed node group with an SSH key and no source security groups opens port 22 to 0.0.0.0/0."""
    remote = as_map(resource.props.get("remoteAccess"))
    if get(remote, "ec2SshKey") and not as_list(get(remote, "sourceSecurityGroupIds")):
        yield f"node group '{resource.name}' admits SSH from anywhere (remote access without source security groups)"


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
