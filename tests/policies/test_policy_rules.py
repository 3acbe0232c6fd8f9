"""Every rule on real resource shapes: one that passes, one that fails with its message, and its config."""

from __future__ import annotations

import json
from typing import Any

import pytest

from meshstack.core.resources import ResourceView
from meshstack.core.types import WORKLOAD_NODES
from meshstack.policies.pack import RULES_BY_NAME
from meshstack.policies.rule import Finding
from tests.support.policy_views import governed, group, view


def check(rule: str, resource: ResourceView, **config: Any) -> list[str]:
    """A resource rule on the resource; a stack rule on a stack of that one resource."""
    r = RULES_BY_NAME[rule]
    if r.kind == "stack":
        return [f.message for f in r.check([resource], r.settings(config))]  # type: ignore[arg-type,list-item,union-attr]
    return list(r.check(resource, r.settings(config)))  # type: ignore[arg-type]


def check_stack(rule: str, resources: list[ResourceView], **config: Any) -> list[Finding]:
    r = RULES_BY_NAME[rule]
    return list(r.check(resources, r.settings(config)))  # type: ignore[arg-type]


CLUSTER = "aws:eks/cluster:Cluster"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
GOOD_CLUSTER = {
    "encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": "arn:aws:kms:us-east-1:1:key/k"}},
    "vpcConfig": {"endpointPublicAccess": False, "endpointPrivateAccess": True},
    "enabledClusterLogTypes": ["api", "audit", "authenticator", "controllerManager", "scheduler"],
}
GOOD_LT = {
    "metadataOptions": {"httpTokens": "required"},
    "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true", "volumeSize": 200}}],
}


def pod(container: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    c = {
        "name": "main",
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer@sha256:" + "a" * 64,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "allowPrivilegeEscalation": False},
        "resources": {"limits": {"cpu": "4", "memory": "16Gi"}},
    }
    return {"containers": [{**c, **(container or {})}], **spec}


def deployment(container: dict[str, Any] | None = None, **spec: Any) -> ResourceView:
    return view("kubernetes:apps/v1:Deployment", {"spec": {"template": {"spec": pod(container, **spec)}}}, "serve")


# (rule, type, passing props, failing props, expected message)
CASES = [
    (
        "eks-secrets-encrypted",
        CLUSTER,
        GOOD_CLUSTER,
        {**GOOD_CLUSTER, "encryptionConfig": None},
        "does not encrypt Kubernetes secrets",
    ),
    (
        "eks-endpoint-restricted",
        CLUSTER,
        GOOD_CLUSTER,
        {**GOOD_CLUSTER, "vpcConfig": {"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]}},
        "public to the whole internet",
    ),
    (
        "eks-endpoint-restricted",
        CLUSTER,
        {**GOOD_CLUSTER, "vpcConfig": {"endpointPublicAccess": True, "publicAccessCidrs": ["203.0.113.0/24"]}},
        {**GOOD_CLUSTER, "vpcConfig": {}},
        "public to the whole internet",
    ),
    (
        "eks-control-plane-logging",
        CLUSTER,
        GOOD_CLUSTER,
        {**GOOD_CLUSTER, "enabledClusterLogTypes": ["api"]},
        "does not send control-plane logs: audit, authenticator",
    ),
    ("imdsv2-required", LT, GOOD_LT, {**GOOD_LT, "metadataOptions": {"httpTokens": "optional"}}, "allows IMDSv1"),
    (
        "ebs-volumes-encrypted",
        LT,
        GOOD_LT,
        {**GOOD_LT, "blockDeviceMappings": [{"ebs": {"encrypted": "false"}}]},
        "EBS volume without encryption",
    ),
    (
        "ebs-volumes-encrypted",
        "aws:ec2/instance:Instance",
        {"rootBlockDevice": {"encrypted": True}},
        {"rootBlockDevice": {"encrypted": False}},
        "EBS volume without encryption",
    ),
    (
        "security-group-no-public-ingress",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        {"referencedSecurityGroupId": "sg-1", "ipProtocol": "-1"},
        {"cidrIpv4": "0.0.0.0/0", "ipProtocol": "tcp", "fromPort": 22, "toPort": 22},
        "admits 0.0.0.0/0 on ports 22-22",
    ),
    (
        "security-group-no-public-ingress",
        "aws:ec2/securityGroup:SecurityGroup",
        {"ingress": [{"cidrBlocks": ["10.0.0.0/8"], "protocol": "-1", "fromPort": 0, "toPort": 0}]},
        {"ingress": [{"ipv6CidrBlocks": ["::/0"], "protocol": "-1", "fromPort": 0, "toPort": 0}]},
        "admits ::/0 on all ports",
    ),
    (
        "iam-no-wildcard-admin",
        "aws:iam/rolePolicy:RolePolicy",
        {"policy": json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})},
        {"policy": json.dumps({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": ["*"]}]})},
        "allows every action on every resource",
    ),
    (
        "iam-no-wildcard-admin",
        "aws:iam/role:Role",
        {
            "inlinePolicies": [
                {"policy": json.dumps({"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]})}
            ]
        },
        {
            "inlinePolicies": [
                {"policy": json.dumps({"Statement": {"Effect": "Allow", "Action": "*:*", "Resource": "*"}})}
            ]
        },
        "allows every action on every resource",
    ),
    (
        "fsx-encrypted",
        "aws:fsx/lustreFileSystem:LustreFileSystem",
        {"deploymentType": "PERSISTENT_2", "kmsKeyId": "arn:aws:kms:us-east-1:1:key/k"},
        {"deploymentType": "PERSISTENT_2"},
        "not encrypted with a customer-managed KMS key",
    ),
    (
        "efs-encrypted",
        "aws:efs/fileSystem:FileSystem",
        {"encrypted": True},
        {"encrypted": False},
        "is not encrypted at rest",
    ),
    (
        "node-group-max-size",
        "aws:eks/nodeGroup:NodeGroup",
        {"scalingConfig": {"maxSize": 4}},
        {"scalingConfig": {"maxSize": 100}},
        "can grow to 100 nodes, over the limit of 64",
    ),
    (
        "node-group-max-size",
        "aws:eks/nodeGroup:NodeGroup",
        {"scalingConfig": {"maxSize": 4}},
        {"scalingConfig": {}},
        "has no max size",
    ),
    (
        "node-group-max-size",
        "gcp:container/nodePool:NodePool",
        {"autoscaling": {"maxNodeCount": 16}, "nodeLocations": ["us-east5-a"]},
        {"autoscaling": {"maxNodeCount": 40}, "nodeLocations": ["us-east5-a", "us-east5-b"]},
        "can grow to 80 nodes, over the limit of 64",
    ),
    (
        "required-tags",
        "aws:ec2/vpc:Vpc",
        {"tags": {"team": "a", "project": "b", "cost-center": "c"}},
        {"tags": {"team": "a"}},
        "lacks the cost-allocation tags project, cost-center",
    ),
    (
        "storage-size-cap",
        "aws:fsx/lustreFileSystem:LustreFileSystem",
        {"storageCapacity": 2400},
        {"storageCapacity": 201600},
        "201600 GiB, over the cap of 100800 GiB",
    ),
    (
        "storage-size-cap",
        LT,
        GOOD_LT,
        {"blockDeviceMappings": [{"ebs": {"volumeSize": 4096}}]},
        "4096 GiB volume, over the cap of 2048 GiB",
    ),
    (
        "training-job-deadline",
        "kubernetes:batch/v1:Job",
        {"spec": {"activeDeadlineSeconds": 3600, "ttlSecondsAfterFinished": 600}},
        {"spec": {}},
        "has no activeDeadlineSeconds",
    ),
    (
        "training-job-deadline",
        "kubernetes:jobset.x-k8s.io/v1alpha2:JobSet",
        {
            "spec": {
                "ttlSecondsAfterFinished": 600,
                "replicatedJobs": [{"template": {"spec": {"activeDeadlineSeconds": 1}}}],
            }
        },
        {"spec": {"replicatedJobs": [{"template": {"spec": {"activeDeadlineSeconds": 1}}}]}},
        "has no ttlSecondsAfterFinished",
    ),
    (
        "service-load-balancer-internal",
        "kubernetes:core/v1:Service",
        {
            "metadata": {
                "name": "api",
                "annotations": {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"},
            },
            "spec": {"type": "LoadBalancer"},
        },
        {"metadata": {"name": "api"}, "spec": {"type": "LoadBalancer"}},
        "service 'api' is an internet-facing",
    ),
]


@pytest.mark.parametrize(("rule", "typ", "good", "bad", "message"), CASES)
def test_rule_passes_good_and_fails_bad(
    rule: str, typ: str, good: dict[str, Any], bad: dict[str, Any], message: str
) -> None:
    assert RULES_BY_NAME[rule].applies_to(typ)
    assert check(rule, view(typ, good)) == []
    found = check(rule, view(typ, bad))
    assert found and message in found[0], found


@pytest.mark.parametrize(
    ("rule", "container", "spec", "message"),
    [
        ("pod-not-privileged", {"securityContext": {"privileged": True, "runAsNonRoot": True}}, {}, "runs privileged"),
        (
            "pod-no-host-namespaces",
            None,
            {"hostNetwork": True, "hostIPC": True},
            "shares the host's namespaces: hostNetwork, hostIPC",
        ),
        ("pod-run-as-non-root", {"securityContext": {"allowPrivilegeEscalation": False}}, {}, "may run as root"),
        (
            "pod-no-privilege-escalation",
            {"securityContext": {"runAsNonRoot": True, "runAsUser": 1}},
            {},
            "does not set allowPrivilegeEscalation: false",
        ),
        (
            "pod-capabilities-allowed",
            {"securityContext": {"runAsNonRoot": True, "capabilities": {"add": ["IPC_LOCK", "SYS_ADMIN"]}}},
            {},
            "adds capabilities IPC_LOCK, SYS_ADMIN",
        ),
        ("pod-image-tag-pinned", {"image": "python"}, {}, "image 'python' has no fixed tag"),
        ("pod-image-tag-pinned", {"image": "ghcr.io/org/python:latest"}, {}, "has no fixed tag"),
        ("pod-no-host-port", {"ports": [{"containerPort": 80, "hostPort": 80}]}, {}, "binds port 80 on the node"),
        (
            "pod-no-host-path",
            None,
            {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]},
            "mounts the node's / (volume root)",
        ),
        ("pod-resource-limits", {"resources": {"limits": {"cpu": "1"}}}, {}, "sets no limit for memory"),
    ],
)
def test_pod_rules(rule: str, container: dict[str, Any] | None, spec: dict[str, Any], message: str) -> None:
    assert check(rule, deployment()) == []
    found = check(rule, deployment(container, **spec))
    assert found and message in found[0], found
    assert "serve (Deployment" in found[0]


def test_pod_rules_see_every_replicated_job_of_a_jobset() -> None:
    bad = pod({"securityContext": {"privileged": True}})
    jobset = view(
        "kubernetes:jobset.x-k8s.io/v1alpha2:JobSet",
        {
            "spec": {
                "replicatedJobs": [
                    {"template": {"spec": {"template": {"spec": pod()}}}},
                    {"template": {"spec": {"template": {"spec": bad}}}},
                ]
            }
        },
        "train",
    )
    assert check("pod-not-privileged", jobset) == ["train (replicatedJobs[1], container main) runs privileged"]


def test_no_capability_is_allowed_by_default_and_config_can_allow_one() -> None:
    locked = deployment({"securityContext": {"runAsNonRoot": True, "capabilities": {"add": ["IPC_LOCK"]}}})
    assert check("pod-capabilities-allowed", locked) == [
        "serve (Deployment, container main) adds capabilities IPC_LOCK"
    ]
    assert check("pod-capabilities-allowed", locked, allowed_capabilities=["IPC_LOCK"]) == []


def test_host_path_and_port_allow_lists_admit_only_what_they_name() -> None:
    plugin = deployment(volumes=[{"name": "dp", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}}])
    assert check("pod-no-host-path", plugin, allowed_host_paths=["/var/lib/kubelet/device-plugins"]) == []
    sibling = deployment(volumes=[{"name": "k", "hostPath": {"path": "/var/lib/kubelet-other"}}])
    assert check("pod-no-host-path", sibling, allowed_host_paths=["/var/lib/kubelet"]) != []
    agent = deployment({"ports": [{"containerPort": 9100, "hostPort": 9100}]})
    assert check("pod-no-host-port", agent, allowed_host_ports=[9100]) == []


OWN_CLUSTER = view("aws:eks/cluster:Cluster", {"arn": "arn:aws:eks:eu-west-1:111122223333:cluster/c"}, "c")


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("111122223333.dkr.ecr.eu-west-1.amazonaws.com/trainer:1.0", True),
        ("999988887777.dkr.ecr.eu-west-1.amazonaws.com/trainer:1.0", False),  # another account's ECR
        ("111122223333.dkr.ecr.us-east-1.amazonaws.com/trainer:1.0", False),  # own account, other region
        ("registry.k8s.io/jobset/jobset-controller:v0.8.0", True),
        ("python:3.12", False),  # docker.io/library/python
        ("nvcr.io/nvidia/pytorch:24.10-py3", True),
        ("nvcr.io/someone/else:1", False),
    ],
)
def test_registry_allow_list_admits_only_the_stacks_own_ecr_and_named_registries(image: str, allowed: bool) -> None:
    found = check_stack("pod-images-allowed", [OWN_CLUSTER, deployment({"image": image})])
    assert (found == []) is allowed, found


def test_registry_entries_are_literal_globs_apart_from_the_placeholders() -> None:
    odd = deployment({"image": "registry.example.com/team}/x:1"})
    assert check_stack("pod-images-allowed", [odd], allowed_registries=["registry.example.com/team}/*"]) == []
    unresolved = deployment({"image": "us-docker.pkg.dev/p/x:1"})
    assert check_stack("pod-images-allowed", [unresolved], allowed_registries=["*-docker.pkg.dev/{project}/*"]) != []


def test_registry_allow_list_on_gcp_admits_only_the_stacks_project() -> None:
    cluster = view("gcp:container/cluster:Cluster", {"project": "ml-prod"}, "gke")
    own = deployment({"image": "us-central1-docker.pkg.dev/ml-prod/images/trainer:1"})
    other = deployment({"image": "us-central1-docker.pkg.dev/someone-else/images/trainer:1"})
    assert check_stack("pod-images-allowed", [cluster, own]) == []
    [finding] = check_stack("pod-images-allowed", [cluster, other])
    assert "us-central1-docker.pkg.dev/someone-else/images/trainer" in finding.message
    assert check_stack("pod-images-allowed", [cluster, own], require_digest=True) != []


def test_digest_pinning_is_required_only_where_configured() -> None:
    tagged = deployment({"image": "nvcr.io/nvidia/jax:25.04"})
    assert check_stack("pod-images-allowed", [tagged]) == []
    [finding] = check_stack("pod-images-allowed", [tagged], require_digest=True)
    assert "is not pinned by digest" in finding.message


def test_allowed_ports_config_opens_https_only() -> None:
    https = view(
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        {"cidrIpv4": "0.0.0.0/0", "ipProtocol": "tcp", "fromPort": 443, "toPort": 443},
    )
    assert check("security-group-no-public-ingress", https) != []
    assert check("security-group-no-public-ingress", https, allowed_ports=[443]) == []
    wide = view(
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        {"cidrIpv4": "0.0.0.0/0", "ipProtocol": "tcp", "fromPort": 0, "toPort": 1000},
    )
    assert check("security-group-no-public-ingress", wide, allowed_ports=[443]) != []


def test_public_load_balancer_allowed_by_name() -> None:
    lb = view("kubernetes:core/v1:Service", {"metadata": {"name": "api"}, "spec": {"type": "LoadBalancer"}})
    assert check("service-load-balancer-internal", lb, allowed_public_services=["api"]) == []


def test_logging_config_changes_what_is_required() -> None:
    cluster = view(CLUSTER, {**GOOD_CLUSTER, "enabledClusterLogTypes": ["api"]})
    assert check("eks-control-plane-logging", cluster, required_log_types=["api"]) == []


def bucket_set(pab: dict[str, Any] | None, sse: str | None) -> list[ResourceView]:
    resources = [view("aws:s3/bucket:Bucket", {"id": "data-1", "bucket": "data-1"}, "data")]
    if pab is not None:
        resources.append(view("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", {"bucket": "data-1", **pab}))
    if sse is not None:
        resources.append(
            view(
                "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                {"bucket": "data-1", "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": sse}}]},
            )
        )
    return resources


ALL_BLOCKED = {k: True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")}


def test_s3_public_access_block_must_exist_and_be_complete() -> None:
    assert check_stack("s3-public-access-blocked", bucket_set(ALL_BLOCKED, "aws:kms")) == []
    [missing] = check_stack("s3-public-access-blocked", bucket_set(None, "aws:kms"))
    assert missing.message == "bucket 'data' has no public access block"
    assert missing.urn.endswith("::data")
    [partial] = check_stack("s3-public-access-blocked", bucket_set({**ALL_BLOCKED, "blockPublicPolicy": False}, None))
    assert "leaves blockPublicPolicy off" in partial.message


def test_s3_encryption_requires_kms_unless_configured() -> None:
    assert check_stack("s3-encrypted", bucket_set(ALL_BLOCKED, "aws:kms")) == []
    [plain] = check_stack("s3-encrypted", bucket_set(ALL_BLOCKED, "AES256"))
    assert "default encryption is AES256" in plain.message
    assert check_stack("s3-encrypted", bucket_set(ALL_BLOCKED, "AES256"), allow_sse_s3=True) == []
    [none] = check_stack("s3-encrypted", bucket_set(ALL_BLOCKED, None))
    assert "default encryption is none" in none.message


def attached(typ: str, policy: str, **principals: Any) -> ResourceView:
    return view(typ, {**principals, "policyArn": f"arn:aws:iam::aws:policy/{policy}"}, "attach")


@pytest.mark.parametrize(
    ("typ", "principals", "who"),
    [
        ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", {"role": "nodes-1"}, "role 'nodes-1'"),
        ("aws:iam/userPolicyAttachment:UserPolicyAttachment", {"user": "ci"}, "user 'ci'"),
        ("aws:iam/groupPolicyAttachment:GroupPolicyAttachment", {"group": "devs"}, "group 'devs'"),
        ("aws:iam/policyAttachment:PolicyAttachment", {"roles": ["a"], "users": ["b"]}, "role 'a'"),
    ],
)
def test_admin_policy_attached_to_any_principal(typ: str, principals: dict[str, Any], who: str) -> None:
    assert check("iam-no-admin-attached", attached(typ, "AmazonEKSWorkerNodePolicy", **principals)) == []
    found = check("iam-no-admin-attached", attached(typ, "AdministratorAccess", **principals))
    assert f"{who} is given the administrator policy AdministratorAccess" in found


def test_admin_policy_in_a_roles_managed_policy_arns() -> None:
    role = view("aws:iam/role:Role", {"managedPolicyArns": ["arn:aws:iam::aws:policy/IAMFullAccess"]}, "workload")
    assert check("iam-no-admin-attached", role) == ["role 'workload' is given the administrator policy IAMFullAccess"]


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ({"Action": "*", "Resource": "*"}, "allows every action on every resource"),
        ({"NotAction": "s3:*", "Resource": "*"}, "allows every action on every resource"),
        ({"Action": "iam:PassRole", "Resource": "*"}, "may pass any role"),
        ({"Action": ["iam:pass*"], "Resource": ["*"]}, "may pass any role"),
    ],
)
def test_wildcard_power_in_a_policy_document(statement: dict[str, Any], message: str) -> None:
    def policy(s: dict[str, Any]) -> ResourceView:
        return view("aws:iam/policy:Policy", {"policy": json.dumps({"Statement": [{"Effect": "Allow", **s}]})}, "p")

    assert check("iam-no-wildcard-admin", policy({"Action": "iam:PassRole", "Resource": "arn:aws:iam::1:role/x"})) == []
    [found] = check("iam-no-wildcard-admin", policy(statement))
    assert message in found


def test_accelerator_cap_from_the_stack_budget_and_from_config() -> None:
    resources = [*governed("prod", max_accelerators=16), group("h100", "p5.48xlarge", 4), group("cpu", "m7i.xlarge", 9)]
    [finding] = check_stack("accelerator-cap", resources)
    assert finding.message == "the stack can scale to 32 accelerators (h100: 32), over the cap of 16"
    assert check_stack("accelerator-cap", resources, max_accelerators=32) == []
    assert check_stack("accelerator-cap", resources[1:]) == [], "no cap anywhere: nothing to enforce"


def test_cost_cap_uses_the_estimate_while_the_workloads_run() -> None:
    # The pool idles at 0, is declared at 1, and the stack's workloads keep 2 of its 3 nodes busy.
    busy = view("meshstack:aws:NodeGroup", {WORKLOAD_NODES: {"h100": 2}}, "h100")
    resources = [*governed("prod", max_hourly_usd=100), busy, group("h100", "p5.48xlarge", 3, desired=1)]
    [finding] = check_stack("stack-cost-cap", resources)
    assert finding.message == "while its workloads run the stack costs $110.08/hour, over the cap of $100.00/hour"
    [monthly] = check_stack("stack-cost-cap", resources, max_hourly_usd=200, max_monthly_usd=50000)
    assert "$80,358/month, over the cap of $50,000/month" in monthly.message
    assert check_stack("stack-cost-cap", resources[:1] + resources[2:]) == [], "without workloads: its desired size"


def test_dev_stacks_need_spot_or_scale_to_zero() -> None:
    always_on = group("gpu", "g6.xlarge", 2, min_size=1)
    [finding] = check_stack("dev-spot-or-scale-to-zero", [*governed("dev"), always_on])
    assert finding.message == "node group 'gpu' is on-demand and never scales to zero"
    assert check_stack("dev-spot-or-scale-to-zero", [*governed("prod"), always_on]) == []
    spot = group("gpu", "g6.xlarge", 2, capacity="SPOT", min_size=1)
    assert check_stack("dev-spot-or-scale-to-zero", [*governed("dev"), spot]) == []
    assert check_stack("dev-spot-or-scale-to-zero", [*governed("staging"), always_on], environments=["staging"])


def test_every_rule_has_what_a_user_needs() -> None:
    for rule in RULES_BY_NAME.values():
        assert rule.description and rule.remediation, rule.name
        assert rule.severity in ("low", "medium", "high", "critical")
        assert rule.enforcement in ("advisory", "mandatory")
