"""The workflow files call meshstack and Pulumi the way this repository is laid out."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshstack.cli import parser
from meshstack.core.stack_file import PROJECT_ROOT
from tests.conftest import SHIPPED_STACKS
from tests.support.fake_gh import FAKE_GH

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"


def workflow(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def steps(flow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in flow["jobs"].values() for step in job["steps"]]


@pytest.mark.parametrize("name", ["pull-request.yml", "main.yml"])
def test_meshstack_commands_parse_and_every_stack_is_covered(name: str) -> None:
    flow = workflow(name)
    commands = [
        line.strip()
        for step in steps(flow)
        for line in str(step.get("run", "")).splitlines()
        if ".venv/bin/meshstack " in line
    ]
    assert commands
    for command in commands:
        words = shlex.split(re.sub(r"\$\{\{[^}]*\}\}", "dev", command.split(">")[0]))
        parser().parse_args(words[1:])
    for job in flow["jobs"].values():
        assert sorted(job["strategy"]["matrix"]["stack"]) == sorted(SHIPPED_STACKS)


def test_the_checkov_step_is_optional_and_off_by_default() -> None:
    """checkov runs on the exported plan only where the repository variable asks for it."""
    [step] = [s for s in steps(workflow("pull-request.yml")) if "checkov" in str(s.get("run", ""))]
    assert "vars.MESHSTACK_CHECKOV" in step["if"]
    assert "--tf-plan plan.json" in step["run"] and "--framework terraform_plan" in step["run"]
    assert "--soft-fail" in step["env"]["SOFT_FAIL"]


def test_pull_requests_post_the_markdown_comment_with_a_baseline() -> None:
    text = (WORKFLOWS / "pull-request.yml").read_text()
    assert "--markdown --baseline" in text


def test_each_stack_keeps_one_comment_that_later_runs_edit(tmp_path: Path) -> None:
    job = workflow("pull-request.yml")["jobs"]["offline"]
    [step] = [s for s in job["steps"] if "marker" in str(s.get("run", ""))]
    gh = tmp_path / "bin" / "gh"
    gh.parent.mkdir()
    gh.write_text(FAKE_GH)
    gh.chmod(0o755)
    store = tmp_path / "comments.json"
    for run, stack in enumerate(["dev", "prod-aws", "dev", "prod-gcp", "prod-aws"]):
        (tmp_path / "comment.md").write_text(f"<!-- meshstack-preview:{stack} -->\n## {stack} run {run}\n")
        env = {"PATH": f"{gh.parent}:/usr/bin:/bin", "FAKE_GH_STORE": str(store), "PR": "7", "REPO": "o/r"}
        subprocess.run(["bash", "-c", step["run"]], cwd=tmp_path, env={**env, "STACK": stack}, check=True)
    comments = json.loads(store.read_text())
    assert [c["body"].splitlines()[1] for c in comments] == ["## dev run 2", "## prod-aws run 4", "## prod-gcp run 3"]


@pytest.mark.parametrize(("name", "command"), [("pull-request.yml", "preview"), ("main.yml", "up")])
def test_pulumi_runs_with_the_pack_and_its_stack_config(name: str, command: str) -> None:
    [pulumi] = [s for s in steps(workflow(name)) if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert pulumi["with"]["command"] == command
    assert (PROJECT_ROOT / pulumi["with"]["policyPacks"] / "PulumiPolicy.yaml").is_file()
    for stack in SHIPPED_STACKS:
        config = pulumi["with"]["policyPackConfigs"].replace("${{ matrix.stack }}", stack)
        assert Path(PROJECT_ROOT / config).is_file()
