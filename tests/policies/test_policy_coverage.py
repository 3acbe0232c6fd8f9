"""Coverage by concept, against the providers' own registered types: every resource type whose SDK class
takes the property that carries a concept is one its rule names, or is set aside here with the reason.

The installed SDKs are the oracle. A provider release that adds a resource carrying a concept (a new way
to launch an instance, a new attachment) fails this test until the rule names it or the reason is written
down.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
from functools import cache
from pathlib import Path

import pytest

from meshstack.policies.pack import RULES_BY_ID
from meshstack.policies.pod_templates import WORKLOAD_TYPES

CLASS = re.compile(r"^class (\w+)\(pulumi\.CustomResource\):", re.M)
PARAM = re.compile(r"^\s+(\w+):", re.M)


def _package_root(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent


@cache
def parameters(package: str) -> dict[str, set[str]]:
    """Type token -> the input properties its SDK class takes (its `_internal_init`'s parameters)."""
    root = _package_root(package)
    table = (root / "__init__.py").read_text().split('resource_modules="""', 1)[1].split('"""', 1)[0]
    tokens = {(m["fqn"], cls): tok for m in json.loads(table) for tok, cls in m["classes"].items()}
    out: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        if path.name.startswith("_"):
            continue
        text = path.read_text()
        fqn = ".".join((package, *path.parent.relative_to(root).parts))
        for match in CLASS.finditer(text):
            token = tokens.get((fqn, match.group(1)))
            start = text.find("def _internal_init(", match.end())
            if token is not None and start > 0:
                out[token] = set(PARAM.findall(text[start : text.find("):", start)]))
    return out


# rule id -> (the SDK properties that carry its concept, {type that takes one but is not the concept: why})
CARRIERS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "MS-AWS-006": (("metadata_options", "http_tokens"), {}),
    "MS-AWS-007": (
        ("block_device_mappings", "root_block_device", "ebs_block_devices", "launch_specifications"),
        {
            "aws:ec2/ami:Ami": "an AMI's mappings describe its snapshots, whose encryption the volumes inherit",
            "aws:ec2/amiCopy:AmiCopy": "an AMI copy's encryption is its own `encrypted` flag over its snapshots",
            "aws:ec2/amiFromInstance:AmiFromInstance": "mappings of the instance it is taken from",
            "aws:imagebuilder/imageRecipe:ImageRecipe": "the AMI an image pipeline builds, not a volume a stack runs",
            "aws:emr/instanceFleet:InstanceFleet": "its launch specifications are spot and on-demand timeouts",
        },
    ),
    "MS-AWS-008": (
        ("ingress", "cidr_ipv4"),
        {
            "aws:ec2/networkAcl:NetworkAcl": "a stateless subnet ACL; security groups decide what reaches a host",
            "aws:ec2/defaultNetworkAcl:DefaultNetworkAcl": "a stateless subnet ACL, as above",
            "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "egress, not ingress",
        },
    ),
    "MS-AWS-010": (
        ("policy_arn", "policy_arns", "managed_policy_arns", "managed_policy_arn"),
        {
            "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": "an EKS access policy, not an IAM policy",
            "aws:quicksight/iamPolicyAssignment:IamPolicyAssignment": "limits QuickSight users' access to data",
            "aws:rolesanywhere/profile:Profile": "session policies intersect the role's: they narrow, never grant",
        },
    ),
    "MS-AWS-013": (("acl", "access_control_policy", "grants"), {}),
    "MS-AWS-014": (("enable_key_rotation",), {}),
    "MS-AWS-015": (("image_tag_mutability",), {}),
    "MS-AWS-017": (("assume_role_policy",), {}),
    "MS-AWS-018": (("remote_access",), {}),
    "MS-AWS-019": (("internal",), {}),
    "MS-GCP-005": (
        ("node_config", "node_pools"),
        {
            "gcp:apigee/environment:Environment": "Apigee's runtime nodes, not GKE's",
            "gcp:edgecontainer/nodePool:NodePool": "Distributed Cloud Edge, which runs no Google service account",
            "gcp:gkeonprem/bareMetalAdminCluster:BareMetalAdminCluster": "on-premises machines",
            "gcp:gkeonprem/bareMetalCluster:BareMetalCluster": "on-premises machines",
            "gcp:integrationconnectors/connection:Connection": "a connector's own node count",
            "gcp:memcache/instance:Instance": "Memorystore's node shape",
        },
    ),
    "MS-GCP-007": (
        ("source_ranges", "match"),
        {
            "gcp:compute/networkFirewallPolicyPacketMirroringRule:NetworkFirewallPolicyPacketMirroringRule": (
                "mirrors traffic, admits none"
            ),
            "gcp:networksecurity/ullMirroringCollectorRule:UllMirroringCollectorRule": "mirrors traffic, admits none",
            "gcp:compute/securityPolicyRule:SecurityPolicyRule": "a Cloud Armor rule filters what a load balancer "
            "already admits; it opens no port",
            "gcp:compute/regionSecurityPolicyRule:RegionSecurityPolicyRule": "a Cloud Armor rule, as above",
        },
    ),
}
# Concepts whose carrying property is too common a name to find them by (a `policy`, a `member`): their
# types are given by module, and every type of those modules that takes one is checked.
SCOPED: dict[str, tuple[tuple[str, ...], tuple[str, ...], dict[str, str]]] = {
    "MS-GCP-010": (("gcp:storage/",), ("member", "members", "role_entities", "entity", "policy_data"), {}),
    "MS-GCP-011": (
        ("gcp:projects/", "gcp:folder/", "gcp:organizations/"),
        ("member", "members", "policy_data"),
        {"gcp:projects/iamMemberRemove:IamMemberRemove": "removes a member, grants nothing"},
    ),
    "MS-AWS-001": (("aws:s3/",), ("block_public_policy",), {}),
}


def _provider(rule_id: str) -> str:
    return "pulumi_gcp" if rule_id.startswith("MS-GCP") else "pulumi_aws"


def _named(rule_id: str, token: str) -> bool:
    return any(fnmatch.fnmatchcase(token, p) for p in RULES_BY_ID[rule_id].resource_types)


@pytest.mark.parametrize("rule_id", sorted(CARRIERS))
def test_every_type_that_carries_the_concept_is_named_by_its_rule(rule_id: str) -> None:
    carriers, set_aside = CARRIERS[rule_id]
    takes = {t for t, params in parameters(_provider(rule_id)).items() if set(carriers) & params}
    assert takes, f"{rule_id}: no type takes {carriers}: the oracle found nothing"
    missing = sorted(t for t in takes if not _named(rule_id, t) and t not in set_aside)
    assert not missing, f"{rule_id} does not name {missing}"
    assert not [t for t in set_aside if _named(rule_id, t)], "a type set aside is named after all"
    assert set(set_aside) <= takes, "a type set aside no longer takes the property"


@pytest.mark.parametrize("rule_id", sorted(SCOPED))
def test_every_type_of_a_scoped_concept_is_named_by_its_rule(rule_id: str) -> None:
    prefixes, carriers, set_aside = SCOPED[rule_id]
    takes = {
        t for t, params in parameters(_provider(rule_id)).items() if t.startswith(prefixes) and set(carriers) & params
    }
    assert takes
    missing = sorted(t for t in takes if not _named(rule_id, t) and t not in set_aside)
    assert not missing, f"{rule_id} does not name {missing}"


ARGS_CLASS = re.compile(r"^class (\w+Args):\n(.*?)(?=^class |\Z)", re.M | re.S)
ARGS_REF = re.compile(r"\['(?:[\w.]+\.)?(\w+Args)'")
POD_ARGS = {"PodTemplateSpecArgs", "PodSpecArgs", "PodTemplateSpecPatchArgs", "PodSpecPatchArgs"}


@cache
def kubernetes_pod_carriers() -> set[str]:
    """The pulumi-kubernetes types whose inputs reach a pod template or pod spec, followed through the
    SDK's own input classes (a CronJob's job template's spec's template, a List's items)."""
    root = _package_root("pulumi_kubernetes")
    refs: dict[str, set[str]] = {}
    for path in root.rglob("_inputs.py"):
        for match in ARGS_CLASS.finditer(path.read_text()):
            body = match.group(2)
            start = body.find("def __init__(")
            refs.setdefault(match.group(1), set()).update(ARGS_REF.findall(body[start : body.find("):", start)]))

    def reaches(name: str, seen: set[str]) -> bool:
        if name in POD_ARGS:
            return True
        seen.add(name)
        return any(reaches(n, seen) for n in refs.get(name, ()) if n not in seen)

    found = set()
    for path in root.rglob("*.py"):
        if path.name.startswith("_"):
            continue
        text = path.read_text()
        for match in CLASS.finditer(text):
            start = text.find("def _internal_init(", match.end())
            if any(reaches(r, set()) for r in ARGS_REF.findall(text[start : text.find("):", start)])):
                found.add(f"kubernetes:{path.parent.parent.name}/{path.parent.name}:{match.group(1)}")
    return found


def test_every_kubernetes_kind_with_a_pod_template_is_judged_by_the_pod_rules() -> None:
    carriers = kubernetes_pod_carriers()
    assert {"kubernetes:batch/v1:CronJob", "kubernetes:core/v1:PodTemplate", "kubernetes:apps/v1:DeploymentPatch"} <= (
        carriers
    )
    missing = sorted(t for t in carriers if not any(fnmatch.fnmatchcase(t, p) for p in WORKLOAD_TYPES))
    assert not missing, f"the pod rules do not name {missing}"
