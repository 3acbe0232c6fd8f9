"""The CLI on each shipped stack, on broken copies, and without the tools it cannot work without."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from meshstack.cli import main
from tests.conftest import SHIPPED_STACKS, stack_config

MakeProject = Callable[[str, dict[str, Any]], Path]


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_preview_prints_the_tree(stack: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preview", "--stack", stack]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Stack {stack} (")
    cluster, pool = (
        ("[meshstack:gcp:GkeCluster]", "[gcp:container/nodePool:NodePool]")
        if stack.endswith("gcp")
        else ("[meshstack:aws:EksCluster]", "[aws:eks/nodeGroup:NodeGroup]")
    )
    assert cluster in out and pool in out
    assert "resources to create in" in out
    # The running figure first: it is what the budget rules read.
    running = r"Cost: running its workloads \$[\d,.]+/hour .*; idle \$[\d,.]+/hour, as declared \$[\d,.]+/hour"
    assert re.search(running, out)
    assert re.search(r"Energy: idle [\d,]+ kWh \([\d,]+ kgCO2e\), as declared .* running its workloads [\d,]+ kWh", out)


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_preview_json(stack: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preview", "--stack", stack, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["stack"] == stack
    resources = data["resources"]
    assert {"urn", "type", "name", "parent", "inputs"} <= set(resources[0])
    urns = {r["urn"] for r in resources}
    assert all(r["parent"] in urns or r["parent"].endswith(f"::meshstack-{stack}") for r in resources)
    assert any(r["type"] in ("aws:eks/cluster:Cluster", "gcp:container/cluster:Cluster") for r in resources)


def test_preview_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    main(["preview", "--stack", "dev", "--json"])
    first = capsys.readouterr().out
    main(["preview", "--stack", "dev", "--json"])
    assert capsys.readouterr().out == first


def test_broken_stack_exits_3_with_one_line_naming_the_field(
    project_copy: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    config = stack_config("dev")
    config["meshstack:clusters"][0]["node_pools"][1]["accelerator"] = "h900"
    root = project_copy("dev", config)
    assert main(["--project", str(root), "preview", "--stack", "dev"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("meshstack: Pulumi.dev.yaml: clusters[0].node_pools[1].accelerator: unknown accelerator")


def test_yaml_syntax_error_names_the_line(
    tmp_path: Path, project_copy: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project_copy("dev", stack_config("dev"))
    (root / "stacks" / "Pulumi.dev.yaml").write_text("config:\n  aws:region: us-east-1\n   bad: [\n")
    assert main(["--project", str(root), "validate", "--stack", "dev"]) == 2
    err = capsys.readouterr().err
    assert "Pulumi.dev.yaml: line 3: not valid YAML" in err and len(err.splitlines()) == 1


def test_unknown_stack_lists_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preview", "--stack", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no stack 'nope'" in err and "dev, prod-aws, prod-gcp" in err


def test_validate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--stack", "prod-aws"]) == 0
    assert "prod-aws: valid (1 cluster(s), 3 node pool(s), 2 workload(s))" in capsys.readouterr().out


def test_validate_json_reports_every_problem_with_its_field(
    project_copy: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "-s", "prod-gcp", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "stack": "prod-gcp",
        "valid": True,
        "cloud": "gcp",
        "region": "us-east5",
        "clusters": 1,
        "node_pools": 3,
        "workloads": 2,
    }
    config = stack_config("dev")
    config["meshstack:clusters"][0]["node_pools"][1]["accelerator"] = "h900"
    root = project_copy("dev", config)
    assert main(["--project", str(root), "validate", "--stack", "dev", "--json"]) == 2
    result = json.loads(capsys.readouterr().out)
    assert result["valid"] is False and result["source"] == "Pulumi.dev.yaml"
    [problem] = result["problems"]
    assert problem["field"] == "clusters[0].node_pools[1].accelerator"
    assert problem["message"].startswith("unknown accelerator 'h900'")


def test_the_stack_falls_back_to_pulumi_stack_like_the_pulumi_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PULUMI_STACK", "prod-gcp")
    assert main(["validate"]) == 0
    assert capsys.readouterr().out.startswith("prod-gcp: valid")
    assert main(["validate", "-s", "dev"]) == 0
    assert capsys.readouterr().out.startswith("dev: valid")


def test_usage_errors_exit_64_and_are_not_confused_with_an_invalid_stack(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PULUMI_STACK", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["validate"])
    assert exited.value.code == 64
    assert "the following arguments are required: -s/--stack" in capsys.readouterr().err
    assert main(["validate", "--stack", "nope"]) == 2


def test_version_names_the_installed_package(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"meshstack {version('meshstack')}"


def test_up_without_the_pulumi_cli_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["up", "--stack", "dev", "--yes"]) == 4
    err = capsys.readouterr().err
    assert "the Pulumi CLI is not installed" in err and "meshstack preview --stack dev" in err


@pytest.mark.slow
def test_console_script_reports_errors_without_a_traceback(project_copy: MakeProject) -> None:
    config = stack_config("prod-aws")
    del config["meshstack:clusters"][0]["node_pools"][1]["reservation_id"]
    root = project_copy("prod-aws", config)
    done = subprocess.run(
        [sys.executable, "-m", "meshstack.cli", "--project", str(root), "preview", "--stack", "prod-aws"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "clusters[0].node_pools[1].reservation_id" in done.stderr
