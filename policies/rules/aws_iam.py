"""IAM rules: no policy grants everything, no principal gets an administrator policy, no role trusts anyone.

Documents are read wherever a provider resource carries one (managed and inline policies, a role's
inline policies and its trust policy), and attachments wherever one is made (the per-principal
attachments, the many-principal PolicyAttachment and the exclusive attachments that replace a
principal's whole set).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from meshstack.core.resources import ResourceView
from meshstack.policies.iam import covers, every_action, every_resource, open_to_anyone
from meshstack.policies.rule import RuleSet, Undecided, as_list, get, policy_document, policy_statements, text
from meshstack.policies.values import Unknown

ROLE = "aws:iam/role:Role"
IAM_DOCUMENT_TYPES = (
    "aws:iam/policy:Policy",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/groupPolicy:GroupPolicy",
    ROLE,
)
ADMIN_POLICIES = ["AdministratorAccess", "PowerUserAccess", "IAMFullAccess"]


def _documents(resource: ResourceView) -> list[Any]:
    if resource.type == ROLE:
        return [get(p, "policy") for p in as_list(resource.props.get("inlinePolicies"))]
    return [resource.props.get("policy")]


# Where each attachment type names its principals, and the kind of principal.
ATTACHMENTS = {
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": (("role", "role"),),
    "aws:iam/userPolicyAttachment:UserPolicyAttachment": (("user", "user"),),
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment": (("group", "group"),),
    "aws:iam/policyAttachment:PolicyAttachment": (("roles", "role"), ("users", "user"), ("groups", "group")),
}
# Exclusive attachments hold a principal's whole list of managed policies; IAM Identity Center attaches
# managed policies to a permission set, which every user assigned it then holds.
EXCLUSIVE_ATTACHMENTS = {
    "aws:iam/rolePolicyAttachmentsExclusive:RolePolicyAttachmentsExclusive": ("roleName", "role", "policyArns"),
    "aws:iam/userPolicyAttachmentsExclusive:UserPolicyAttachmentsExclusive": ("userName", "user", "policyArns"),
    "aws:iam/groupPolicyAttachmentsExclusive:GroupPolicyAttachmentsExclusive": ("groupName", "group", "policyArns"),
    "aws:ssoadmin/managedPolicyAttachment:ManagedPolicyAttachment": (
        "permissionSetArn",
        "permission set",
        "managedPolicyArn",
    ),
    "aws:ssoadmin/managedPolicyAttachmentsExclusive:ManagedPolicyAttachmentsExclusive": (
        "permissionSetArn",
        "permission set",
        "managedPolicyArns",
    ),
}

RULES = RuleSet()


@RULES.rule(
    id="MS-AWS-009",
    name="iam-no-wildcard-admin",
    description="No IAM policy grants every action (or iam:PassRole) on every resource, however the "
    "wildcard is written ('*', '*:*', NotAction, NotResource, an ARN pattern matching everything).",
    severity="critical",
    enforcement="mandatory",
    resource_types=IAM_DOCUMENT_TYPES,
    remediation="Name the actions and the resource ARNs the principal needs (see ClusterIam.service_account_role).",
)
def iam_no_wildcard_admin(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str | Undecided]:
    for document in _documents(resource):
        if isinstance(policy_document(document), Unknown):
            yield Undecided(f"'{resource.name}': its policy document is unknown")
            continue
        for statement in policy_statements(document):
            # An unknown Resource or Principal is an output of some resource: one ARN, never a wildcard.
            if text(statement.get("Effect")).lower() != "allow" or not every_resource(statement):
                continue
            if every_action(statement):
                yield f"'{resource.name}' allows every action on every resource ('Action': '*', 'Resource': '*')"
            elif covers(statement.get("Action"), "iam:PassRole"):
                yield f"'{resource.name}' may pass any role to any service ('iam:PassRole' on 'Resource': '*')"


def _grants(resource: ResourceView) -> list[tuple[str, Any]]:
    props = resource.props
    if resource.type == ROLE:
        return [(f"role '{resource.name}'", a) for a in as_list(props.get("managedPolicyArns"))]
    if resource.type in EXCLUSIVE_ATTACHMENTS:
        key, kind, arns = EXCLUSIVE_ATTACHMENTS[resource.type]
        return [(f"{kind} '{text(props.get(key))}'", a) for a in as_list(props.get(arns))]
    return [
        (f"{kind} '{text(principal)}'", props.get("policyArn"))
        for key, kind in ATTACHMENTS.get(resource.type, ())
        for principal in as_list(props.get(key))
    ]


@RULES.rule(
    id="MS-AWS-010",
    name="iam-no-admin-attached",
    description="No role, user or group (node and workload roles included) is given an administrator policy.",
    severity="critical",
    enforcement="mandatory",
    resource_types=(ROLE, *ATTACHMENTS, *EXCLUSIVE_ATTACHMENTS),
    config={"admin_policies": {"type": "array", "items": {"type": "string"}, "default": ADMIN_POLICIES}},
    remediation="Attach only the actions the principal needs: nodes get AmazonEKSWorkerNodePolicy, "
    "AmazonEKS_CNI_Policy and AmazonEC2ContainerRegistryReadOnly; pods get their own IRSA or Pod Identity roles.",
)
def iam_no_admin_attached(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str | Undecided]:
    admin = tuple(f":policy/{name}" for name in config["admin_policies"])
    for principal, arn in _grants(resource):
        if isinstance(arn, Unknown):
            yield Undecided(f"{principal}: the policy attached is unknown")
        elif isinstance(arn, str) and arn.endswith(admin):
            yield f"{principal} is given the administrator policy {arn.rsplit('/', 1)[-1]}"


@RULES.rule(
    id="MS-AWS-017",
    name="iam-trust-not-open",
    description="No IAM role trusts any principal ('*', every account) without a condition naming who.",
    severity="critical",
    enforcement="mandatory",
    resource_types=(ROLE,),
    remediation="Name the account, role or service that may assume the role in its Principal, or add a "
    "condition on aws:PrincipalOrgID, aws:SourceAccount or sts:ExternalId.",
)
def trust_not_open(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str | Undecided]:
    """A trust policy that lets any principal assume the role makes it anyone's, whatever it may do."""
    document = resource.props.get("assumeRolePolicy")
    if isinstance(policy_document(document), Unknown):
        yield Undecided(f"role '{resource.name}': its trust policy is unknown")
        return
    for statement in policy_statements(document):
        if open_to_anyone(statement):
            yield f"role '{resource.name}' may be assumed by any principal (its trust policy allows '*')"
