"""`meshstack preview --tf-plan FILE`: the stack's cloud resources as Terraform plan JSON, which checkov's
terraform_plan framework accepts and runs its checks over; the shipped type table against the installed
provider SDKs."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meshstack.core.stack_file import PROJECT_ROOT
from meshstack.preview.plan import Preview
from meshstack.preview.terraform_types import field_name, table, terraform_type
from meshstack.preview.tfplan import to_plan, values
from tests.conftest import SHIPPED_STACKS
from tests.support.provider_types import provider_types


@pytest.mark.parametrize(("provider", "package"), [("aws", "pulumi_aws"), ("gcp", "pulumi_gcp")])
def test_the_type_table_matches_the_installed_sdk(provider: str, package: str) -> None:
    data = table(provider)
    assert data["sdk_version"] == importlib.metadata.version(package.replace("_", "-"))
    assert data["source"] and data["extracted"]
    registered = provider_types(package)
    missing = sorted(t for t in data["resources"] if t not in registered)
    assert not missing, f"tokens the installed {package} does not register: {missing[:10]}"
    assert all(
        entry["type"].startswith("aws_" if provider == "aws" else "google_") for entry in data["resources"].values()
    )


def test_the_gcp_table_is_the_whole_provider() -> None:
    """Extracted from the bridge metadata, it holds every resource the SDK registers (bar a handful the
    metadata lists under an older token)."""
    registered = provider_types("pulumi_gcp")
    assert len(set(table("gcp")["resources"]) & registered) >= 0.95 * len(registered)


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_cloud_resource_of_the_shipped_stacks_has_a_terraform_type(
    stack: str, preview: Callable[[str], Preview]
) -> None:
    export = to_plan(preview(stack).resources)
    assert export.untyped == [] and export.written > 30
    assert export.kubernetes > 0, "Kubernetes objects are counted as left to --manifests"


def test_blocks_are_reshaped_as_terraform_holds_them() -> None:
    cluster = terraform_type("gcp:container/cluster:Cluster")
    assert cluster is not None and cluster.type == "google_container_cluster"
    assert field_name("nodePools", cluster.fields) == "node_pool"
    out = values({"nodeConfig": {"serviceAccount": "sa"}, "nodePools": [{"name": "a"}]}, cluster.fields)
    assert out == {"node_config": [{"service_account": "sa"}], "node_pool": [{"name": "a"}]}
    instance = terraform_type("aws:ec2/instance:Instance")
    assert instance is not None and instance.type == "aws_instance"
    out = values(
        {"ebsBlockDevices": [{"encrypted": False}], "metadataOptions": {"httpTokens": "required"}}, instance.fields
    )
    assert out == {"ebs_block_device": [{"encrypted": False}], "metadata_options": [{"http_tokens": "required"}]}
    template = terraform_type("aws:ec2/launchTemplate:LaunchTemplate")
    assert template is not None and field_name("blockDeviceMappings", template.fields) == "block_device_mappings"
    assert terraform_type("kubernetes:apps/v1:Deployment") is None
    assert terraform_type("meshstack:aws:Network") is None


def meshstack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshstack.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )


def checkov_plan(path: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("checkov")),
            *("-f", str(path), "--framework", "terraform_plan", "-o", "json", "--skip-download"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(done.stdout)
    return report if isinstance(report, list) else [report]


@pytest.mark.slow
def test_checkov_accepts_the_plan_and_runs_its_checks_over_the_stacks_aws_resources(tmp_path: Path) -> None:
    plan = tmp_path / "dev.tfplan.json"
    done = meshstack("preview", "--stack", "dev", "--tf-plan", str(plan))
    assert done.returncode == 0, done.stderr
    assert "as a Terraform plan" in done.stderr and "Kubernetes object(s) are left to --manifests" in done.stderr
    data = json.loads(plan.read_text())
    assert data["format_version"] and data["planned_values"]["root_module"]["resources"]
    assert len(data["resource_changes"]) == len(data["planned_values"]["root_module"]["resources"])
    [report] = checkov_plan(plan)
    assert report["check_type"] == "terraform_plan"
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["resource_count"] == len(data["resource_changes"])
    results = report["results"]["passed_checks"] + report["results"]["failed_checks"]
    judged = {r["resource"].split(".")[0] for r in results}
    assert {"aws_eks_cluster", "aws_launch_template", "aws_s3_bucket", "aws_kms_key", "aws_security_group"} <= judged
    passed = {(r["check_id"], r["resource"].split(".")[0]) for r in report["results"]["passed_checks"]}
    # What meshstack declares, as checkov reads it through the plan: secrets encrypted, IMDSv2, key rotation,
    # the bucket's public access block and KMS encryption found through the plan's references.
    for check in (
        ("CKV_AWS_58", "aws_eks_cluster"),
        ("CKV_AWS_79", "aws_launch_template"),
        ("CKV_AWS_7", "aws_kms_key"),
        ("CKV2_AWS_6", "aws_s3_bucket"),
        ("CKV_AWS_145", "aws_s3_bucket"),
    ):
        assert check in passed, check


def test_tf_plan_refuses_a_folder_or_a_path_it_cannot_write(tmp_path: Path) -> None:
    done = meshstack("preview", "--stack", "dev", "--tf-plan", str(tmp_path))
    assert done.returncode == 64 and "is a folder; name the plan file to write" in done.stderr
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = meshstack("preview", "--stack", "dev", "--tf-plan", str(blocker / "plan.json"))
    assert done.returncode == 64 and "--tf-plan" in done.stderr
