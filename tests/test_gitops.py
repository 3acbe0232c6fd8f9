"""The workflow files call meshstack and Pulumi the way this repository is laid out."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshstack.cli import parser
from meshstack.core.stack_file import PROJECT_ROOT
from tests.conftest import SHIPPED_STACKS

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


def test_pull_requests_post_the_markdown_comment_with_a_baseline() -> None:
    text = (WORKFLOWS / "pull-request.yml").read_text()
    assert "--markdown --baseline" in text and "gh pr comment" in text


@pytest.mark.parametrize(("name", "command"), [("pull-request.yml", "preview"), ("main.yml", "up")])
def test_pulumi_runs_with_the_pack_and_its_stack_config(name: str, command: str) -> None:
    [pulumi] = [s for s in steps(workflow(name)) if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert pulumi["with"]["command"] == command
    assert (PROJECT_ROOT / pulumi["with"]["policyPacks"] / "PulumiPolicy.yaml").is_file()
    for stack in SHIPPED_STACKS:
        config = pulumi["with"]["policyPackConfigs"].replace("${{ matrix.stack }}", stack)
        assert Path(PROJECT_ROOT / config).is_file()
