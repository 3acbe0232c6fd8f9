"""The GitOps workflows `meshstack init` writes, run the way GitHub runs their steps, in a project made by
`meshstack init` outside this checkout: they discover the stacks with each file's cloud and region, install
the release requirements.txt pins, support a self-managed state backend, and post the cost diff against the
base branch's checkout, so a change to the program shows up as well as a change to a stack file."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshstack.cli import parser
from meshstack.core.stack_file import PROJECT_ROOT
from meshstack.scaffold import installed_version
from tests.support.cli_project import init, read_config, write_config
from tests.support.fake_gh import FAKE_GH

WORKFLOWS = ("meshstack-preview.yml", "meshstack-up.yml")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An init'ed project whose .venv/bin/meshstack runs this checkout, as the pinned install would."""
    root = init(tmp_path / "repo")
    venv = root / ".venv" / "bin"
    venv.mkdir(parents=True)
    wrapper = venv / "meshstack"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={PROJECT_ROOT} exec {sys.executable} -m meshstack.cli "$@"\n')
    wrapper.chmod(0o755)
    return root


def workflow(root: Path, name: str) -> dict[str, Any]:
    flow: dict[str, Any] = yaml.safe_load((root / ".github" / "workflows" / name).read_text())
    return flow


def step(root: Path, name: str, job: str, words: str) -> dict[str, Any]:
    [found] = [s for s in workflow(root, name)["jobs"][job]["steps"] if words in str(s.get("name", ""))]
    return found


def run_step(root: Path, script: str, **env: str) -> dict[str, str]:
    """A step's `run` as GitHub runs it (bash -e), returning what it wrote to $GITHUB_OUTPUT."""
    output, summary = root / ".github-output", root / ".github-summary"
    output.write_text("")
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root), "PROJECT_DIR": "."}
    variables = {**base_env, "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary), **env}
    subprocess.run(["bash", "-e", "-c", script], cwd=root, env=variables, check=True, timeout=600)
    return dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)


@pytest.mark.parametrize("name", WORKFLOWS)
def test_every_meshstack_command_parses_and_installs_the_pinned_release(project: Path, name: str) -> None:
    text = (project / ".github" / "workflows" / name).read_text()
    assert "pip install -e" not in text and '-r "$PROJECT_DIR/requirements.txt"' in text
    assert f"meshstack=={installed_version()}" in (project / "requirements.txt").read_text()
    commands = [
        line.strip()
        for job in workflow(project, name)["jobs"].values()
        for s in job["steps"]
        for line in str(s.get("run", "")).splitlines()
        if '/bin/meshstack"' in line
    ]
    assert commands
    for command in commands:
        arguments = re.split(r"[)>]", command.split('/bin/meshstack"', 1)[1])[0]
        words = [w for w in shlex.split(arguments) if not w.startswith("${")]
        parser().parse_args([w.replace("$STACK", "dev").replace("$PROJECT_DIR", ".") for w in words])


@pytest.mark.parametrize("name", WORKFLOWS)
def test_each_stack_job_takes_its_cloud_and_region_and_a_self_managed_backend(project: Path, name: str) -> None:
    flow = workflow(project, name)
    jobs = [job for job in flow["jobs"].values() if "strategy" in job]
    assert jobs
    for job in jobs:
        assert job["strategy"]["matrix"]["include"] == "${{ fromJSON(needs.stacks.outputs.stacks) }}"
        uses = {str(s.get("uses", "")).split("@")[0]: s for s in job["steps"] if "uses" in s}
        if "pulumi/actions" not in uses:
            continue
        assert uses["aws-actions/configure-aws-credentials"]["with"]["aws-region"] == "${{ matrix.region }}"
        assert "matrix.cloud == 'aws'" in uses["aws-actions/configure-aws-credentials"]["if"]
        assert "matrix.cloud == 'gcp'" in uses["google-github-actions/auth"]["if"]
        pulumi = uses["pulumi/actions"]["with"]
        assert pulumi["cloud-url"] == "${{ env.PULUMI_BACKEND_URL }}" and pulumi["stack-name"] == "${{ matrix.stack }}"
        assert (project / pulumi["policyPacks"] / "PulumiPolicy.yaml").is_file()
        assert (project / pulumi["policyPackConfigs"].replace("${{ matrix.stack }}", "dev")).is_file()
        assert job["env"]["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"
        assert job["env"]["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"


def test_the_stacks_are_discovered_with_the_cloud_and_region_of_each_file(project: Path, tmp_path: Path) -> None:
    gcp = init(tmp_path / "other", "gcp")
    shutil.copy(gcp / "Pulumi.dev.yaml", project / "Pulumi.research.yaml")
    config = read_config(project)
    config["aws:region"] = "us-west-2"
    write_config(project, config)
    discover = step(project, "meshstack-preview.yml", "stacks", "Discover")
    stacks = json.loads(run_step(project, discover["run"])["stacks"])
    assert stacks == [
        {"stack": "dev", "file": "Pulumi.dev.yaml", "cloud": "aws", "region": "us-west-2"},
        {"stack": "research", "file": "Pulumi.research.yaml", "cloud": "gcp", "region": "us-central1"},
    ]


EXTRA_IP = """
import pulumi_aws as aws

aws.ec2.Eip("extra-ip", domain="vpc", tags={"team": "ml-platform", "project": "repo", "cost-center": "0000"})
"""


@pytest.mark.slow
def test_the_comment_shows_the_cost_of_a_program_change_against_the_base_checkout(project: Path) -> None:
    shutil.copytree(project, project / ".meshstack-base", ignore=shutil.ignore_patterns(".venv", ".github-*"))
    with (project / "__main__.py").open("a") as program:
        program.write(EXTRA_IP)  # a code change: no stack file differs from the base branch's
    preview = step(project, "meshstack-preview.yml", "offline", "Preview")
    outputs = run_step(project, preview["run"], STACK="dev")
    comment = (project / "comment.md").read_text()
    assert outputs["status"] == "0", comment
    assert comment.startswith("<!-- meshstack-preview:dev -->")
    assert re.search(r"\| Eip extra-ip \| public IPv4 address \| \$0\.00 \| \$0\.01 \| \+\$3\.65 \|", comment), comment

    gh = project / "bin" / "gh"
    gh.parent.mkdir()
    gh.write_text(FAKE_GH)
    gh.chmod(0o755)
    post = step(project, "meshstack-preview.yml", "offline", "Comment")
    store = project / "comments.json"
    path = f"{gh.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    for _ in range(2):
        run_step(project, post["run"], PATH=path, FAKE_GH_STORE=str(store), PR="3", REPO="o/r", STACK="dev")
    [posted] = json.loads(store.read_text())
    assert posted["body"] == comment, "one comment per stack, edited by later runs"
