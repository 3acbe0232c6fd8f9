"""The pack as the engine runs it: offline over the analyzer protocol, and as a real analyzer server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pulumi
import pulumi_aws as aws
import pytest
from google.protobuf import empty_pb2, json_format
from pulumi.runtime.proto import analyzer_pb2_grpc

from meshstack.cli import main
from meshstack.core.errors import SpecError
from meshstack.core.stack_file import PROJECT_ROOT, find_project
from meshstack.policies.pack import RULES_BY_NAME
from meshstack.preview.plan import Preview, preview_stack
from meshstack.preview.policy_runner import evaluate, load_policy_config
from meshstack.preview.recorder import run_program
from tests.conftest import SHIPPED_STACKS, stack_config

MakeProject = Callable[[str, dict[str, Any]], Path]


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_shipped_stacks_pass_the_pack(preview: Callable[[str], Preview], stack: str) -> None:
    assert preview(stack).violations == []


def insecure_prod(project_copy: MakeProject) -> Preview:
    config = stack_config("prod-aws")
    cluster = config["meshstack:clusters"][0]
    cluster["public_access_cidrs"] = ["0.0.0.0/0"]
    cluster["log_types"] = ["api"]
    cluster["node_pools"][1].update(max_nodes=100, reserved_nodes=100)  # a capacity block is used whole
    config["meshstack:budget"] = {"max_accelerators": 36, "max_hourly_usd": 50, "max_monthly_usd": 200000}
    return preview_stack("prod-aws", find_project(project_copy("prod-aws", config)))


def test_insecure_over_budget_prod_copy_fails_with_exactly_the_expected_violations(
    project_copy: MakeProject,
) -> None:
    found = {
        (v.policy, v.level, v.urn.rsplit("::", 1)[-1] if v.urn else "") for v in insecure_prod(project_copy).violations
    }
    assert found == {
        ("eks-endpoint-restricted", "mandatory", "prod-aws-train"),
        ("eks-control-plane-logging", "mandatory", "prod-aws-train"),
        ("node-group-max-size", "mandatory", "prod-aws-train-h100"),
        ("accelerator-cap", "mandatory", ""),
        ("stack-cost-cap", "mandatory", ""),
    }


def insecure_program() -> None:
    """Raw resources that break the security rules, declared as a careless program would."""
    bucket = aws.s3.Bucket("loose")
    aws.s3.BucketServerSideEncryptionConfiguration(
        "loose", bucket=bucket.id, rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}]
    )
    aws.vpc.SecurityGroupIngressRule(
        "ssh",
        security_group_id="sg-1",
        cidr_ipv4="0.0.0.0/0",
        ip_protocol="tcp",
        from_port=22,
        to_port=22,
        tags={"team": "t", "project": "p", "cost-center": "c"},
    )
    aws.iam.Policy("god", policy=json.dumps({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    aws.ec2.LaunchTemplate(
        "old",
        metadata_options={"http_tokens": "optional"},
        block_device_mappings=[{"device_name": "/dev/xvda", "ebs": {"encrypted": "false"}}],
        tags={"team": "t", "project": "p", "cost-center": "c"},
    )
    trust = json.dumps(
        {"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    )
    role = aws.iam.Role("nodes", assume_role_policy=trust, tags={"team": "t", "project": "p", "cost-center": "c"})
    aws.iam.RolePolicyAttachment(
        "nodes-admin", role=role.name, policy_arn="arn:aws:iam::aws:policy/AdministratorAccess"
    )
    pulumi.export("bucket", bucket.id)


EXPECTED_INSECURE = {
    ("s3-public-access-blocked", "loose"),
    ("s3-encrypted", "loose"),
    ("required-tags", "loose"),
    ("required-tags", "god"),
    ("security-group-no-public-ingress", "ssh"),
    ("iam-no-wildcard-admin", "god"),
    ("imdsv2-required", "old"),
    ("ebs-volumes-encrypted", "old"),
    ("iam-no-admin-attached", "nodes-admin"),
}


def test_insecure_resources_fail_with_exactly_the_expected_violations() -> None:
    resources = run_program(insecure_program, "meshstack", "test", {}, "us-east-1")
    violations = evaluate(resources)
    assert {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in violations} == EXPECTED_INSECURE
    assert all(v.level == "mandatory" for v in violations)
    ssh = next(v for v in violations if v.policy == "security-group-no-public-ingress")
    assert ssh.message == "'ssh' admits 0.0.0.0/0 on ports 22-22/tcp"
    assert ssh.severity == "critical" and "referenced_security_group_id" in ssh.remediation


def test_offline_evaluation_and_a_direct_call_agree() -> None:
    resources = run_program(insecure_program, "meshstack", "test", {}, "us-east-1")
    offline = {(v.policy, v.urn, v.message) for v in evaluate(resources)}
    direct = set()
    views = [r.view() for r in resources]
    for rule in RULES_BY_NAME.values():
        settings = rule.settings({})
        if rule.kind == "stack":
            direct |= {(rule.name, f.urn, f.message) for f in rule.check(views, settings)}  # type: ignore[arg-type]
        else:
            for r in resources:
                if r.custom and rule.applies_to(r.type):
                    direct |= {(rule.name, r.urn, m) for m in rule.check(r.view(), settings)}  # type: ignore[arg-type]
    assert offline == direct


def test_stack_policy_config_turns_a_rule_advisory_or_off(project_copy: MakeProject) -> None:
    config = stack_config("dev")
    config["meshstack:clusters"][0]["log_types"] = ["api"]
    root = project_copy("dev", config)
    project = find_project(root)
    [mandatory] = preview_stack("dev", project).violations
    assert (mandatory.policy, mandatory.level) == ("eks-control-plane-logging", "mandatory")
    (root / "policies" / "config").mkdir(parents=True)
    policy_file = root / "policies" / "config" / "dev.json"
    policy_file.write_text(json.dumps({"eks-control-plane-logging": "advisory"}))
    [advisory] = preview_stack("dev", project).violations
    assert advisory.level == "advisory"
    assert main(["--project", str(root), "preview", "--stack", "dev"]) == 0
    policy_file.write_text(json.dumps({"eks-control-plane-logging": {"required_log_types": ["api"]}}))
    assert preview_stack("dev", project).violations == []
    policy_file.write_text(json.dumps({"all": "disabled"}))
    assert preview_stack("dev", project).violations == []


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ({"no-such-rule": "advisory"}, "no-such-rule: no such policy in the pack"),
        ({"pod-images-allowed": {"require_digest": "yes"}}, "pod-images-allowed.require_digest: 'yes' is not of type"),
        ({"pod-images-allowed": {"enforcementLevel": "strict"}}, "pod-images-allowed.enforcementLevel: 'strict'"),
        ({"s3-encrypted": {"allow_sse_c": True}}, "s3-encrypted: Additional properties are not allowed"),
    ],
)
def test_bad_policy_config_names_the_policy_and_field(tmp_path: Path, content: dict[str, Any], problem: str) -> None:
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(content))
    with pytest.raises(SpecError) as info:
        load_policy_config(path)
    assert problem in str(info.value)


def test_policy_config_that_is_not_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "dev.json"
    path.write_text('{\n  "all": advisory\n}')
    with pytest.raises(SpecError, match=r"dev\.json: line 2: not valid JSON"):
        load_policy_config(path)


def test_cli_exits_1_on_a_mandatory_violation_and_reports_it(
    project_copy: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    config = stack_config("dev")
    config["meshstack:clusters"][0]["public_access_cidrs"] = ["0.0.0.0/0"]
    root = project_copy("dev", config)
    assert main(["--project", str(root), "preview", "--stack", "dev", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    [violation] = data["policy"]["violations"]
    assert {k: violation[k] for k in ("policy", "level", "severity")} == {
        "policy": "eks-endpoint-restricted",
        "level": "mandatory",
        "severity": "high",
    }
    assert violation["urn"].endswith("::dev-dev") and violation["message"]
    assert main(["--project", str(root), "preview", "--stack", "dev", "--markdown"]) == 1
    comment = capsys.readouterr().out
    assert "❌ blocked by policy" in comment and "`eks-endpoint-restricted`" in comment
    assert "never 0.0.0.0/0" in comment, "the remediation text is in the comment"


def test_shipped_policy_configs_are_valid() -> None:
    project = find_project(PROJECT_ROOT)
    for stack in SHIPPED_STACKS:
        load_policy_config(project.root / "policies" / "config" / f"{stack}.json")


@pytest.mark.slow
def test_pack_starts_as_an_analyzer_server_the_cli_can_talk_to() -> None:
    """`pulumi preview --policy-pack policies` runs policies/__main__.py and reads the port it prints."""
    server = subprocess.Popen(
        [sys.executable, "-u", "__main__.py"],
        cwd=PROJECT_ROOT / "policies",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().strip())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            info = analyzer_pb2_grpc.AnalyzerStub(channel).GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
        assert info.name == "meshstack"
        assert {p.name for p in info.policies} == set(RULES_BY_NAME)
        cost_cap = next(p for p in info.policies if p.name == "stack-cost-cap")
        assert "max_hourly_usd" in json_format.MessageToDict(cost_cap.configSchema)["properties"]
    finally:
        server.kill()
        server.wait(timeout=30)
