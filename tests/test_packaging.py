"""The wheel carries what a user of the library and the policy pack needs, and works outside this checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from meshstack.core.stack_file import PROJECT_ROOT
from tests.conftest import SHIPPED_STACKS


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(PROJECT_ROOT)],
        check=True,
        timeout=600,
    )
    [built] = out.glob("meshstack-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_holds_the_pack_its_configs_the_catalogs_and_type_markers(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"policies/PulumiPolicy.yaml", "policies/__main__.py"} <= names
    assert {f"policies/config/{stack}.json" for stack in SHIPPED_STACKS} <= names
    assert {f"{package}/py.typed" for package in ("meshstack", "components", "workloads", "policies")} <= names
    assert {
        "meshstack/core/catalog/aws.yaml",
        "meshstack/core/catalog/gcp.yaml",
        "meshstack/core/kubernetes_versions.yaml",
        "components/k8s/charts.yaml",
    } <= names
    assert "workloads/data/corpus.txt" in names
    assert not any(name.startswith("tests/") for name in names)


@pytest.mark.slow
def test_the_installed_wheel_validates_and_previews_a_project_elsewhere(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        timeout=600,
    )
    project = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT / "stacks", project / "stacks")
    shutil.copy(PROJECT_ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    where = subprocess.run(
        [sys.executable, "-c", "import meshstack, policies.pack; print(meshstack.__file__)"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert where.stdout.startswith(str(site))
    done = subprocess.run(
        [sys.executable, "-m", "meshstack.cli", "preview", "-s", "prod-gcp", "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert '"stack": "prod-gcp"' in done.stdout


@pytest.mark.slow
def test_the_installed_wheel_starts_a_project_that_validates(wheel: Path, tmp_path: Path) -> None:
    """`meshstack init` writes its templates from the installed package's data, not from this checkout."""
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "meshstack/templates/stacks/aws.yaml",
        "meshstack/templates/project/github/workflows/meshstack-up.yml",
    } <= names
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        timeout=600,
    )
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for args in (["init", "infra", "--cloud", "gcp"], ["--project", "infra", "validate", "-s", "dev"]):
        done = subprocess.run(
            [sys.executable, "-m", "meshstack.cli", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
