"""Who may reach a Google Cloud project and its clusters: legacy ABAC and client certificates on GKE,
public members on buckets, primitive roles on projects, folders and organisations.

An IAM grant is written four ways (a member, a binding of members, a whole policy as JSON, and for
buckets the legacy ACLs and access controls); each rule reads all of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from meshstack.core.resources import ResourceView
from meshstack.policies.rule import RuleSet, Undecided, as_list, get, is_true, text
from meshstack.policies.values import Unknown

GKE_CLUSTER = "gcp:container/cluster:Cluster"
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
PUBLIC_PREDEFINED_ACLS = ("publicRead", "publicReadWrite", "authenticatedRead")
BUCKET_IAM_TYPES = (
    "gcp:storage/bucketIAMMember:BucketIAMMember",
    "gcp:storage/bucketIAMBinding:BucketIAMBinding",
    "gcp:storage/bucketIAMPolicy:BucketIAMPolicy",
    "gcp:storage/managedFolderIamMember:ManagedFolderIamMember",
    "gcp:storage/managedFolderIamBinding:ManagedFolderIamBinding",
    "gcp:storage/managedFolderIamPolicy:ManagedFolderIamPolicy",
)
BUCKET_ACL_TYPES = (
    "gcp:storage/bucketACL:BucketACL",
    "gcp:storage/defaultObjectACL:DefaultObjectACL",
    "gcp:storage/objectACL:ObjectACL",
    "gcp:storage/bucketAccessControl:BucketAccessControl",
    "gcp:storage/defaultObjectAccessControl:DefaultObjectAccessControl",
    "gcp:storage/objectAccessControl:ObjectAccessControl",
)
HIERARCHY_IAM_TYPES = tuple(
    f"gcp:{scope}/{kind}"
    for scope in ("projects", "folder", "organizations")
    for kind in ("iAMMember:IAMMember", "iAMBinding:IAMBinding", "iAMPolicy:IAMPolicy")
)
PRIMITIVE_ROLES = ["roles/owner", "roles/editor"]


RULES = RuleSet()


@RULES.rule(
    id="MS-GCP-008",
    name="gke-no-legacy-abac",
    description="GKE clusters leave legacy ABAC off, so RBAC alone decides who may do what.",
    severity="high",
    enforcement="mandatory",
    resource_types=(GKE_CLUSTER,),
    remediation="Set enable_legacy_abac=False (the default) and grant rights with RBAC.",
)
def no_legacy_abac(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    if is_true(resource.props.get("enableLegacyAbac")):
        yield f"cluster '{resource.name}' enables legacy ABAC, which grants rights outside RBAC"


@RULES.rule(
    id="MS-GCP-009",
    name="gke-no-legacy-credentials",
    description="GKE clusters use neither basic authentication nor a client certificate.",
    severity="high",
    enforcement="mandatory",
    resource_types=(GKE_CLUSTER,),
    remediation="Drop master_auth's username and password, and set "
    "master_auth.client_certificate_config.issue_client_certificate=False; authenticate with IAM.",
)
def no_legacy_credentials(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    auth = resource.props.get("masterAuth")
    if get(auth, "username") or get(auth, "password"):
        yield f"cluster '{resource.name}' enables basic authentication (master_auth username and password)"
    if is_true(get(auth, "clientCertificateConfig", "issueClientCertificate")):
        yield f"cluster '{resource.name}' issues a client certificate, a credential that never expires"


def grants(resource: ResourceView) -> list[tuple[Any, Any]] | Unknown:
    """(role, member) of every grant the resource makes; an Unknown where its whole policy is unknown."""
    props = resource.props
    if "policyData" in props:
        data = props.get("policyData")
        if isinstance(data, Unknown):
            return data
        try:
            policy = json.loads(data) if isinstance(data, str) else data
        except (json.JSONDecodeError, RecursionError):
            return []
        return [(get(b, "role"), m) for b in as_list(get(policy, "bindings")) for m in as_list(get(b, "members"))]
    if "roleEntities" in props:
        return [(e, e) for e in as_list(props.get("roleEntities"))]
    if "entity" in props:
        return [(props.get("role"), props.get("entity"))]
    members = as_list(props.get("members")) if "members" in props else [props.get("member")]
    return [(props.get("role"), m) for m in members]


def _public(member: Any) -> bool:
    """`allUsers`, `allAuthenticatedUsers`, or an ACL entity `READER:allUsers`."""
    return isinstance(member, str) and member.rsplit(":", 1)[-1] in PUBLIC_MEMBERS


@RULES.rule(
    id="MS-GCP-010",
    name="gcs-no-public-members",
    description="No bucket, managed folder or object grants access to allUsers or allAuthenticatedUsers "
    "(IAM members, bindings, policies, ACLs and access controls).",
    severity="critical",
    enforcement="mandatory",
    resource_types=(*BUCKET_IAM_TYPES, *BUCKET_ACL_TYPES),
    remediation="Grant the role to named users, groups or service accounts; serve public content through a "
    "CDN or signed URLs.",
)
def gcs_no_public_members(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str | Undecided]:
    acl = resource.props.get("predefinedAcl")
    if isinstance(acl, str) and acl in PUBLIC_PREDEFINED_ACLS:
        yield f"'{resource.name}' applies the public predefined ACL '{acl}'"
    found = grants(resource)
    if isinstance(found, Unknown):
        yield Undecided(f"'{resource.name}': its IAM policy is unknown")
        return
    public = sorted({str(m).rsplit(":", 1)[-1] for _, m in found if _public(m)})
    if public:
        yield f"'{resource.name}' grants bucket access to {', '.join(public)}"


@RULES.rule(
    id="MS-GCP-011",
    name="gcp-no-primitive-roles",
    description="No project, folder or organisation grants the primitive owner or editor role.",
    severity="high",
    enforcement="mandatory",
    resource_types=HIERARCHY_IAM_TYPES,
    config={"primitive_roles": {"type": "array", "items": {"type": "string"}, "default": PRIMITIVE_ROLES}},
    remediation="Grant predefined or custom roles with the permissions the member needs.",
)
def no_primitive_roles(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str | Undecided]:
    found = grants(resource)
    if isinstance(found, Unknown):
        yield Undecided(f"'{resource.name}': its IAM policy is unknown")
        return
    roles = {str(r) for r in config["primitive_roles"]}
    for role, member in found:
        if isinstance(role, str) and role in roles:
            yield f"'{resource.name}' grants {role} to {text(member)}: a primitive role over everything in its scope"
