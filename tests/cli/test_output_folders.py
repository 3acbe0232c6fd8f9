"""Where `preview` writes and what it compares with, run from a project `meshstack init` made: a manifests
folder meshstack owns, replaced whole on each write; a baseline that is a project, a stack file or another
stack, and a clear refusal for anything else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from meshstack.core.workspace import MARKER
from tests.support.cli_project import init, meshstack, read_config, write_config


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init(tmp_path_factory.mktemp("folders") / "infra")


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("setup", ["user-files", "etc"])
def test_manifests_refuse_a_folder_meshstack_does_not_own(project: Path, tmp_path: Path, setup: str) -> None:
    if setup == "etc":
        target = Path("/etc")
    else:
        target = tmp_path / "mine"
        target.mkdir()
        (target / "notes.md").write_text("mine\n")
    before = sorted(p.name for p in target.iterdir())
    done = meshstack("preview", "-s", "dev", "--manifests", str(target), cwd=project)
    assert done.returncode == 64
    assert "--manifests" in one_line(done.stderr) and "meshstack did not write" in done.stderr
    assert sorted(p.name for p in target.iterdir()) == before


@pytest.mark.slow
def test_manifests_are_replaced_whole_so_removed_resources_leave_no_file(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    config = read_config(project)
    config["meshstack:storage"]["buckets"].append({"name": "scratch", "size_gib": 10})
    write_config(project, config, stack="m")
    assert meshstack("preview", "-s", "m", "--manifests", str(out), cwd=project).returncode == 0
    first = {str(p.relative_to(out)) for p in out.rglob("*.yaml")}
    assert first and (out / MARKER).exists()
    (out / "main" / "stale-object.yaml").parent.mkdir(exist_ok=True)
    (out / "main" / "stale-object.yaml").write_text("kind: Gone\n")
    assert meshstack("preview", "-s", "m", "--manifests", str(out), cwd=project).returncode == 0
    assert {str(p.relative_to(out)) for p in out.rglob("*.yaml")} == first, "the stale file is gone"


def test_a_baseline_folder_that_is_no_project_is_refused(project: Path, tmp_path: Path) -> None:
    empty = tmp_path / "not-a-project"
    empty.mkdir()
    for baseline, expected in [
        (str(empty), "no Pulumi.yaml in that folder"),
        (".", "is this project itself"),
        ("dev", "is the stack itself"),
    ]:
        done = meshstack("preview", "-s", "dev", "--baseline", baseline, cwd=project)
        assert done.returncode == 64, done.stderr
        assert f"--baseline {baseline}: {expected}" in one_line(done.stderr)


def test_a_missing_baseline_file_is_named_as_given(project: Path) -> None:
    missing = "base/Pulumi.dev.yaml"
    done = meshstack("preview", "-s", "dev", "--baseline", missing, cwd=project)
    assert done.returncode == 64
    assert one_line(done.stderr) == f"meshstack: --baseline {missing}: no such file or folder"
    unknown = meshstack("preview", "-s", "dev", "--baseline", "prod", cwd=project)
    assert unknown.returncode == 2 and "no stack 'prod' in this project (stacks: " in one_line(unknown.stderr)


@pytest.mark.slow
def test_a_base_checkout_without_the_stack_compares_with_nothing(project: Path, tmp_path: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(project, base)
    (base / "Pulumi.dev.yaml").rename(base / "Pulumi.old.yaml")
    done = meshstack("preview", "-s", "dev", "--json", "--baseline", str(base), cwd=project)
    assert done.returncode == 0, done.stderr
    cost = json.loads(done.stdout)["cost"]
    assert cost["baseline"]["hourly_usd"] == 0 and cost["baseline"]["delta_hourly_usd"] == cost["hourly_usd"]
