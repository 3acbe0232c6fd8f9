"""Every rule of the pack, proven the way it is used: a stack goes through `meshstack preview` (the CLI,
as a subprocess) and the rule's violation comes out of its JSON, with the rule's id.

The fixture program (tests/fixtures/hostile) builds the dev stack, makes its pods hostile with a stack
transformation and declares raw resources that break the cloud rules. A rule added to the pack
without a case here fails `test_every_rule_of_the_pack_fires_end_to_end`.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshstack.core.stack_file import PROJECT_ROOT
from meshstack.policies.pack import RULES_BY_ID
from tests.conftest import FIXTURES, stack_config

FIXTURE = FIXTURES / "hostile" / "__main__.py"

# rule id -> (resource name the violation is reported at, "" for the stack; a fragment of its message)
EXPECTED: dict[str, tuple[str, str]] = {
    "MS-AWS-001": ("half", "public access block 'half' leaves blockPublicPolicy off"),
    "MS-AWS-002": ("loose", "default encryption is none"),
    "MS-AWS-003": ("bare-eks", "does not encrypt Kubernetes secrets"),
    "MS-AWS-004": ("bare-eks", "public to the whole internet"),
    "MS-AWS-005": ("bare-eks", "does not send control-plane logs"),
    "MS-AWS-006": ("old", "allows IMDSv1"),
    "MS-AWS-007": ("old", "EBS volume without encryption"),
    "MS-AWS-008": ("ssh", "admits 0.0.0.0/0 on ports 22-22/tcp"),
    "MS-AWS-009": ("passer", "may pass any role"),
    "MS-AWS-010": ("ci-admin", "user 'ci' is given the administrator policy AdministratorAccess"),
    "MS-AWS-011": ("huge-lustre", "not encrypted with a customer-managed KMS key"),
    "MS-AWS-012": ("plain-efs", "not encrypted at rest"),
    "MS-AWS-013": ("public-policy", "has a bucket policy statement that allows any principal"),
    "MS-AWS-014": ("static-key", "does not rotate its key material"),
    "MS-AWS-015": ("mutable", "lets a tag be pushed again (image_tag_mutability MUTABLE)"),
    "MS-AWS-016": ("mutable", "does not scan images on push"),
    "MS-AWS-017": ("open-trust", "may be assumed by any principal"),
    "MS-AWS-018": ("huge-group", "admits SSH from anywhere"),
    "MS-AWS-019": ("public-alb", "is internet-facing"),
    "MS-GCP-001": ("open", "does not enforce public access prevention"),
    "MS-GCP-002": ("open", "not encrypted with a Cloud KMS key"),
    "MS-GCP-003": ("bare-gke", "gives its nodes public IP addresses"),
    "MS-GCP-004": ("pool", "exposes the node's metadata server"),
    "MS-GCP-005": ("bare-gke", "default compute service account"),
    "MS-GCP-006": ("bare-gke", "does not encrypt Kubernetes secrets"),
    "MS-GCP-007": ("gcp-ssh", "admits 0.0.0.0/0"),
    "MS-GCP-008": ("bare-gke", "enables legacy ABAC"),
    "MS-GCP-009": ("bare-gke", "issues a client certificate"),
    "MS-GCP-010": ("public-read", "grants bucket access to allUsers"),
    "MS-GCP-011": ("owner", "grants roles/owner to user:someone@example.com"),
    "MS-K8S-001": ("dev-tiny", "would be rejected by namespace 'ml' (enforce: restricted): Host Namespaces"),
    "MS-K8S-002": ("dev-tiny", "runs privileged"),
    "MS-K8S-003": ("dev-tiny-chat", "shares the host's namespaces: hostNetwork"),
    "MS-K8S-004": ("dev-tiny", "may run as root"),
    "MS-K8S-005": ("dev-tiny", "does not set allowPrivilegeEscalation: false"),
    "MS-K8S-006": ("dev-tiny", "adds capabilities SYS_ADMIN"),
    "MS-K8S-007": ("dev-tiny", "pulls docker.io/library/python, which no allowed registry entry admits"),
    "MS-K8S-008": ("dev-tiny-chat", "image 'python:latest' has no fixed tag"),
    "MS-K8S-009": ("dev-tiny", "sets no limit for cpu, memory"),
    "MS-K8S-010": ("dev-tiny", "mounts the node's / (volume node)"),
    "MS-K8S-011": ("dev-tiny-chat", "binds port 8080 on the node"),
    "MS-K8S-012": ("public-lb", "is an internet-facing load balancer"),
    "MS-K8S-013": ("node-port", "opens a port on every node (type NodePort)"),
    "MS-COST-001": ("", "over the cap of 2"),
    "MS-COST-002": ("", "over the cap of $0.01/hour"),
    "MS-COST-003": ("huge-group", "can grow to 100 nodes, over the limit of 64"),
    "MS-COST-004": ("huge-group", "is on-demand and never scales to zero"),
    "MS-COST-005": ("forever", "has no activeDeadlineSeconds"),
    "MS-COST-006": ("loose", "lacks the cost-allocation tags team, project, cost-center"),
    "MS-COST-007": ("huge-lustre", "is 120000 GiB, over the cap of 100800 GiB"),
    "MS-COST-008": ("", "kWh/month, over the cap of 1 kWh/month"),
}


def hostile_project(root: Path) -> Path:
    (root / "stacks").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
    shutil.copy(FIXTURE, root / "stacks" / "__main__.py")
    config = stack_config("dev")
    # The workloads fit the accelerator cap; the GPU pool could grow past it.
    config["meshstack:budget"] = {"max_hourly_usd": 0.01, "max_accelerators": 2, "max_monthly_kwh": 1}
    config["meshstack:clusters"][0]["node_pools"][1]["max_nodes"] = 3
    (root / "stacks" / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": config}))
    return root


def meshstack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshstack.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )


@functools.cache
def _hostile_preview(root: str) -> tuple[int, dict[str, Any]]:
    done = meshstack("--project", root, "preview", "--stack", "dev", "--json")
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any]]:
    return _hostile_preview(str(hostile_project(tmp_path_factory.mktemp("hostile"))))


@pytest.mark.slow
def test_a_hostile_stack_makes_preview_exit_1(hostile: tuple[int, dict[str, Any]]) -> None:
    code, _ = hostile
    assert code == 1


@pytest.mark.slow
def test_every_rule_of_the_pack_fires_end_to_end(hostile: tuple[int, dict[str, Any]]) -> None:
    _, data = hostile
    fired = {v["id"] for v in data["policy"]["violations"]}
    assert set(RULES_BY_ID) - fired == set(), "rules that never fired through `meshstack preview`"
    assert set(EXPECTED) == set(RULES_BY_ID), "every rule of the pack needs a case in EXPECTED"


@pytest.mark.slow
@pytest.mark.parametrize("rule_id", sorted(EXPECTED))
def test_each_rule_reports_its_resource_message_and_remediation(
    hostile: tuple[int, dict[str, Any]], rule_id: str
) -> None:
    _, data = hostile
    resource, fragment = EXPECTED[rule_id]
    rule = RULES_BY_ID[rule_id]
    mine = [v for v in data["policy"]["violations"] if v["id"] == rule_id]
    at = [v for v in mine if (v["urn"].rsplit("::", 1)[-1] if v["urn"] else "") == resource]
    assert any(fragment in v["message"] for v in at), [v["message"] for v in mine]
    assert all(v["policy"] == rule.name and v["remediation"] == rule.remediation for v in mine)
    assert all(v["level"] == rule.enforcement for v in mine)


@pytest.mark.slow
def test_terminal_and_markdown_name_the_rule_ids(tmp_path: Path) -> None:
    root = str(hostile_project(tmp_path / "p"))
    terminal = meshstack("--project", root, "preview", "--stack", "dev")
    assert terminal.returncode == 1
    assert "[mandatory] MS-K8S-001 pod-security-standards: dev-tiny (replicatedJobs[0])" in terminal.stdout
    comment = meshstack("--project", root, "preview", "--stack", "dev", "--markdown")
    assert "| mandatory | critical | `MS-K8S-002` `pod-not-privileged` | dev-tiny |" in comment.stdout
