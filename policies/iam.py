"""Reading AWS IAM policy statements the way IAM evaluates them: what an Action, Resource or Principal
pattern really covers, however it is written.

A wildcard is more than the string '*': `*:*`, `?*`, `arn:aws:*`, `arn:*:*:*:*:*`, `NotAction` and
`NotResource` all cover (nearly) everything. Rather than list spellings, a pattern is judged by what it
matches: it covers everything when it matches every one of a set of unrelated probe values, as IAM's
case-insensitive glob would.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from meshstack.policies.rule import as_list, text

# Unrelated actions and ARNs from different services, partitions, regions and accounts: a pattern that
# matches all of them matches everything.
ACTION_PROBES = ("iam:PassRole", "s3:GetObject", "ec2:RunInstances", "kms:Decrypt", "sts:AssumeRole")
# A stack lives in one partition, so `arn:aws:*` is everything to it: a pattern covers every resource when it
# matches every probe of some partition.
RESOURCE_PROBES = tuple(
    (
        f"arn:{partition}:iam::123456789012:role/any",
        f"arn:{partition}:s3:::any-bucket/any/key",
        f"arn:{partition}:ec2:{region}:210987654321:instance/i-0123456789abcdef0",
        f"arn:{partition}:kms:{region}:111122223333:key/any",
    )
    for partition, region in (("aws", "us-east-1"), ("aws-cn", "cn-north-1"), ("aws-us-gov", "us-gov-west-1"))
)
PRINCIPAL_PROBES = ("arn:aws:iam::123456789012:root", "arn:aws:iam::210987654321:role/any", "123456789012")
# Condition keys that tie a statement to named accounts, organisations, networks or sources: with one of
# these the statement is not open to anyone (IAM Access Analyzer judges public access the same way).
RESTRICTING_CONDITION_KEYS = frozenset(
    k.lower()
    for k in (
        "aws:SourceAccount",
        "aws:SourceArn",
        "aws:SourceOwner",
        "aws:SourceVpc",
        "aws:SourceVpce",
        "aws:SourceIp",
        "aws:SourceOrgID",
        "aws:SourceOrgPaths",
        "aws:PrincipalAccount",
        "aws:PrincipalArn",
        "aws:PrincipalOrgID",
        "aws:PrincipalOrgPaths",
        "aws:PrincipalServiceName",
        "aws:userid",
        "aws:username",
        "sts:ExternalId",
        "s3:DataAccessPointAccount",
        "s3:DataAccessPointArn",
        "kms:CallerAccount",
        "kms:ViaService",
    )
)


def covers_all(patterns: Any, probes: tuple[str, ...]) -> bool:
    """Whether one of the patterns matches every probe (IAM globs: `*` and `?`, case-insensitive)."""
    for pattern in as_list(patterns):
        if isinstance(pattern, str) and all(fnmatch.fnmatchcase(p.lower(), pattern.lower()) for p in probes):
            return True
    return False


def covers(patterns: Any, value: str) -> bool:
    return any(isinstance(p, str) and fnmatch.fnmatchcase(value.lower(), p.lower()) for p in as_list(patterns))


def allows(statement: Mapping[str, Any]) -> bool:
    return text(statement.get("Effect")).lower() == "allow"


def every_action(statement: Mapping[str, Any]) -> bool:
    """Action covers every action, or NotAction grants everything but a few."""
    return statement.get("NotAction") is not None or covers_all(statement.get("Action"), ACTION_PROBES)


def every_resource(statement: Mapping[str, Any]) -> bool:
    """Resource covers every ARN, or NotResource grants everything but a few."""
    resources = statement.get("Resource")
    return statement.get("NotResource") is not None or any(covers_all(resources, p) for p in RESOURCE_PROBES)


def principals(statement: Mapping[str, Any]) -> list[Any]:
    """Every principal a statement names: `"*"`, or the values of its AWS, Federated, Service and
    CanonicalUser entries."""
    principal = statement.get("Principal")
    if isinstance(principal, Mapping):
        return [p for values in principal.values() for p in as_list(values)]
    return as_list(principal)


def anyone(statement: Mapping[str, Any]) -> bool:
    """The statement's principal is anybody (`*`, `{"AWS": "*"}`, an account pattern matching every
    account), or NotPrincipal leaves everybody else in."""
    if statement.get("NotPrincipal") is not None:
        return True
    return any(p == "*" or covers_all(p, PRINCIPAL_PROBES) for p in principals(statement) if isinstance(p, str))


def restricted_by_condition(statement: Mapping[str, Any]) -> bool:
    """A condition on a key that names who or where (an account, an organisation, a VPC endpoint...)."""
    condition = statement.get("Condition")
    if not isinstance(condition, Mapping):
        return False
    keys = {str(k).lower() for operator in condition.values() if isinstance(operator, Mapping) for k in operator}
    return bool(keys & RESTRICTING_CONDITION_KEYS)


def open_to_anyone(statement: Mapping[str, Any]) -> bool:
    return allows(statement) and anyone(statement) and not restricted_by_condition(statement)
