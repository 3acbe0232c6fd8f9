"""Rules by concept, through the pack as `meshstack preview` runs it: every type that carries a concept is
judged (not only the ones meshstack declares), the shapes that crashed or misjudged before are answered
right, and values unknown during `pulumi preview` are decided one by one."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from meshstack.preview.policy_runner import Violation, evaluate
from meshstack.preview.recorder import Resource

TAGS = {"team": "t", "project": "p", "cost-center": "c"}


def resource(typ: str, props: dict[str, Any], name: str = "r", dependencies: list[str] | None = None) -> Resource:
    urn = f"urn:pulumi:test::meshstack::{typ}::{name}"
    return Resource(urn, typ, name, "", True, "", dependencies or [], props, props)


def fired(resources: list[Resource], rule_id: str, config: dict[str, Any] | None = None) -> list[Violation]:
    return [v for v in evaluate(resources, config) if v.rule_id == rule_id]


def one(typ: str, props: dict[str, Any], rule_id: str) -> list[str]:
    return [v.message for v in fired([resource(typ, props)], rule_id)]


# (rule, type, props that break it, fragment of the message): types meshstack never declares.
BREAKING = [
    ("MS-AWS-006", "aws:ec2/launchConfiguration:LaunchConfiguration", {}, "allows IMDSv1"),
    ("MS-AWS-006", "aws:ec2/spotInstanceRequest:SpotInstanceRequest", {"metadataOptions": {}}, "allows IMDSv1"),
    (
        "MS-AWS-006",
        "aws:ec2/instanceMetadataDefaults:InstanceMetadataDefaults",
        {"httpTokens": "optional"},
        "instance metadata default",
    ),
    ("MS-AWS-007", "aws:ebs/volume:Volume", {"size": 10, "tags": TAGS}, "is an unencrypted EBS volume"),
    (
        "MS-AWS-007",
        "aws:ec2/spotFleetRequest:SpotFleetRequest",
        {"launchSpecifications": [{"rootBlockDevices": [{"encrypted": False}]}]},
        "without encryption",
    ),
    (
        "MS-AWS-008",
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
        {"ingress": [{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}]},
        "admits 0.0.0.0/0 on ports 22-22/tcp",
    ),
    (
        "MS-AWS-010",
        "aws:iam/rolePolicyAttachmentsExclusive:RolePolicyAttachmentsExclusive",
        {"roleName": "ci", "policyArns": ["arn:aws:iam::aws:policy/AdministratorAccess"]},
        "role 'ci' is given the administrator policy",
    ),
    ("MS-AWS-011", "aws:fsx/openZfsFileSystem:OpenZfsFileSystem", {"tags": TAGS}, "customer-managed KMS key"),
    (
        "MS-GCP-004",
        "gcp:container/cluster:Cluster",
        {
            "workloadIdentityConfig": {"workloadPool": "p.svc.id.goog"},
            "removeDefaultNodePool": True,
            "nodePools": [{"name": "inline", "nodeConfig": {"serviceAccount": "n@p.iam.gserviceaccount.com"}}],
        },
        "nodePools[0] inline) exposes the node's metadata",
    ),
    (
        "MS-GCP-007",
        "gcp:compute/networkFirewallPolicyRule:NetworkFirewallPolicyRule",
        {
            "direction": "INGRESS",
            "action": "allow",
            "match": {"srcIpRanges": ["0.0.0.0/0"], "layer4Configs": [{"ipProtocol": "tcp", "ports": ["22"]}]},
        },
        "admits 0.0.0.0/0 on tcp",
    ),
    (
        "MS-COST-003",
        "gcp:container/nodePool:NodePool",
        {"autoscaling": {"maxNodeCount": 1, "totalMaxNodeCount": 500}, "nodeConfig": {"machineType": "n2-standard-8"}},
        "can grow to 500 nodes",
    ),
    ("MS-COST-003", "aws:autoscaling/group:Group", {"maxSize": 1000, "minSize": 0}, "can grow to 1000 nodes"),
    (
        "MS-K8S-002",
        "kubernetes:core/v1:ReplicationController",
        {"spec": {"template": {"spec": {"containers": [{"name": "c", "securityContext": {"privileged": True}}]}}}},
        "runs privileged",
    ),
    (
        "MS-K8S-002",
        "kubernetes:core/v1:PodTemplate",
        {"template": {"spec": {"containers": [{"name": "c", "securityContext": {"privileged": True}}]}}},
        "runs privileged",
    ),
    (
        "MS-K8S-002",
        "kubernetes:apps/v1:DeploymentPatch",
        {"spec": {"template": {"spec": {"containers": [{"name": "c", "securityContext": {"privileged": True}}]}}}},
        "runs privileged",
    ),
    (
        "MS-K8S-003",
        "kubernetes:batch/v1beta1:CronJob",
        {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"hostPID": True, "containers": []}}}}}},
        "hostPID",
    ),
    (
        "MS-K8S-006",
        "kubernetes:extensions/v1beta1:DaemonSet",
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "c", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}]}
                }
            }
        },
        "adds capabilities SYS_ADMIN",
    ),
]


@pytest.mark.parametrize(("rule_id", "typ", "props", "fragment"), BREAKING, ids=[f"{b[0]}-{b[1]}" for b in BREAKING])
def test_every_type_that_carries_a_concept_is_judged(
    rule_id: str, typ: str, props: dict[str, Any], fragment: str
) -> None:
    messages = one(typ, props, rule_id)
    assert any(fragment in m for m in messages), messages


@pytest.mark.parametrize(
    ("statement", "why"),
    [
        ({"Effect": "Allow", "Action": "*:*", "Resource": "*"}, "'*:*'"),
        ({"Effect": "Allow", "Action": "*", "NotResource": "arn:aws:s3:::x"}, "NotResource"),
        ({"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:*"}, "NotAction on an ARN pattern"),
        ({"Effect": "Allow", "Action": ["s3:GetObject", "*"], "Resource": "arn:*:*:*:*:*"}, "an all-matching ARN"),
        ({"Effect": "Allow", "Action": "?*", "Resource": ["arn:aws*:*"]}, "'?*'"),
    ],
)
def test_wildcards_written_other_ways_are_wildcards(statement: dict[str, Any], why: str) -> None:
    messages = one(
        "aws:iam/policy:Policy", {"policy": json.dumps({"Statement": statement}), "tags": TAGS}, "MS-AWS-009"
    )
    assert messages and "allows every action on every resource" in messages[0], why


def test_a_narrow_statement_is_no_wildcard() -> None:
    statement = {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::bucket/*"}
    assert one("aws:iam/policy:Policy", {"policy": json.dumps({"Statement": [statement]})}, "MS-AWS-009") == []


def test_asg_tags_as_a_list_of_key_value_entries_are_read_not_crashed_on() -> None:
    full = [{"key": k, "value": v, "propagateAtLaunch": True} for k, v in TAGS.items()]
    assert one("aws:autoscaling/group:Group", {"tags": full, "maxSize": 2}, "MS-COST-006") == []
    [message] = one("aws:autoscaling/group:Group", {"tags": full[:1], "maxSize": 2}, "MS-COST-006")
    assert "lacks the cost-allocation tags project, cost-center" in message


def test_a_protocol_without_ports_open_to_the_world_is_all_its_ports() -> None:
    props = {"cidrIpv4": "0.0.0.0/0", "ipProtocol": "tcp", "securityGroupId": "sg-1"}
    [message] = one("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", props, "MS-AWS-008")
    assert "all ports/tcp" in message


def test_an_instance_store_mapping_is_no_unencrypted_ebs_volume() -> None:
    props = {
        "metadataOptions": {"httpTokens": "required"},
        "blockDeviceMappings": [
            {"deviceName": "/dev/xvda", "ebs": {"encrypted": "true"}},
            {"deviceName": "/dev/sdb", "virtualName": "ephemeral0"},
            {"deviceName": "/dev/sdc", "noDevice": ""},
        ],
    }
    assert one("aws:ec2/launchTemplate:LaunchTemplate", props, "MS-AWS-007") == []


def test_encryption_by_default_covers_volumes_that_say_nothing() -> None:
    volume = resource("aws:ebs/volume:Volume", {"size": 10})
    assert fired([volume], "MS-AWS-007")
    assert (
        fired([volume, resource("aws:ebs/encryptionByDefault:EncryptionByDefault", {"enabled": True})], "MS-AWS-007")
        == []
    )


def test_a_disabled_metadata_endpoint_is_no_imdsv1() -> None:
    props = {"metadataOptions": {"httpEndpoint": "disabled", "httpTokens": "optional"}}
    assert one("aws:ec2/instance:Instance", props, "MS-AWS-006") == []


AUTOPILOT = {
    "enableAutopilot": True,
    "clusterAutoscaling": {"autoProvisioningDefaults": {"serviceAccount": "nodes@p.iam.gserviceaccount.com"}},
}


def test_an_autopilot_cluster_can_pass_the_node_rules() -> None:
    for rule in ("MS-GCP-004", "MS-GCP-005"):
        assert one("gcp:container/cluster:Cluster", AUTOPILOT, rule) == []
    [message] = one("gcp:container/cluster:Cluster", {"enableAutopilot": True}, "MS-GCP-005")
    assert "Autopilot cluster 'r' runs its nodes as the default compute service account" in message


def test_a_patch_is_judged_on_what_it_sets_not_on_what_it_leaves_out() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}}
    for rule in ("MS-K8S-004", "MS-K8S-005", "MS-K8S-009"):
        assert one("kubernetes:apps/v1:DeploymentPatch", patch, rule) == []


def test_a_public_access_block_with_a_flag_off_is_a_violation_on_its_own() -> None:
    block = {"bucket": "elsewhere", "blockPublicAcls": True, "blockPublicPolicy": False}
    [violation] = fired([resource("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", block)], "MS-AWS-001")
    assert "leaves blockPublicPolicy, ignorePublicAcls, restrictPublicBuckets off" in violation.message
    account = resource(
        "aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock",
        dict.fromkeys(("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"), True),
    )
    assert fired([account, resource("aws:s3/bucket:Bucket", {"bucket": "b"})], "MS-AWS-001") == []


# Values the engine does not know during `pulumi preview` of a new stack.
UNKNOWN = UNKNOWN_STRING_VALUE


def deployment(image: str, name: str) -> Resource:
    pod = {"containers": [{"name": "c", "image": image}]}
    return resource(
        "kubernetes:apps/v1:Deployment", {"metadata": {"namespace": "ml"}, "spec": {"template": {"spec": pod}}}, name
    )


def test_an_unknown_arn_leaves_the_registry_rule_mandatory_for_what_it_can_decide() -> None:
    """pulumi-policy alone would turn MS-K8S-007 advisory for the whole stack at the first unknown ARN."""
    role = resource("aws:iam/role:Role", {"arn": UNKNOWN, "name": "x"}, "role")
    stack = [
        role,
        deployment("docker.io/library/python:3.12", "hub"),
        deployment("123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1", "ecr"),
    ]
    found = fired(stack, "MS-K8S-007")
    decided = [v for v in found if not v.undecided]
    [undecided] = [v for v in found if v.undecided]
    assert len(decided) == 1 and decided[0].level == "mandatory" and decided[0].urn.endswith("::hub")
    assert "pulls docker.io/library/python" in decided[0].message
    assert "ecr" in undecided.message and "the stack's account is unknown" in undecided.message
    assert undecided.level == "advisory"


def test_a_bucket_whose_id_is_unknown_finds_its_block_through_its_dependencies() -> None:
    bucket = resource("aws:s3/bucket:Bucket", {"id": UNKNOWN, "bucket": UNKNOWN}, "b")
    flags = dict.fromkeys(("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"), True)
    block = resource(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", {"bucket": UNKNOWN, **flags}, "b", [bucket.urn]
    )
    assert fired([bucket, block], "MS-AWS-001") == []
    orphan = resource("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", {"bucket": UNKNOWN, **flags}, "o")
    [undecided] = fired([bucket, orphan], "MS-AWS-001")
    assert undecided.undecided and "which public access block is its own is unknown" in undecided.message


def test_an_unknown_policy_document_is_undecided_not_a_violation_nor_a_pass() -> None:
    [undecided] = fired([resource("aws:iam/policy:Policy", {"policy": UNKNOWN, "tags": TAGS})], "MS-AWS-009")
    assert undecided.undecided and "its policy document is unknown" in undecided.message
