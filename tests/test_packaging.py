"""The wheel carries what a user of the library and the policy pack needs, and works outside this checkout."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import version
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
    assert {name.split("/")[0] for name in names} == {"meshstack", wheel.name.split("-py3")[0] + ".dist-info"}
    assert {"meshstack/policies/PulumiPolicy.yaml", "meshstack/policies/__main__.py"} <= names
    assert {f"meshstack/policies/config/{stack}.json" for stack in SHIPPED_STACKS} <= names
    assert {f"meshstack/{package}py.typed" for package in ("", "components/", "workloads/", "policies/")} <= names
    assert {
        "meshstack/components/aws/catalog.yaml",
        "meshstack/components/gcp/catalog.yaml",
        "meshstack/core/kubernetes_versions.yaml",
        "meshstack/components/k8s/charts.yaml",
    } <= names
    assert "meshstack/workloads/data/corpus.txt" in names
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
    for own in ("components", "workloads", "policies"):  # a user's own packages of the folders' names
        (project / own).mkdir()
        (project / own / "__init__.py").write_text(f"OWNER = 'the user ({own})'\n")
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    theirs = subprocess.run(
        [sys.executable, "-c", "import components, workloads, policies as p; print(p.OWNER, components.OWNER)"],
        cwd=project,
        env={**env, "PYTHONPATH": f"{project}:{site}"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert theirs.stdout == "the user (policies) the user (components)\n"
    where = subprocess.run(
        [sys.executable, "-c", "import meshstack, meshstack.policies.pack; print(meshstack.__file__)"],
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
        "meshstack/components/aws/stack.yaml",
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


@pytest.fixture(scope="module")
def slim(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with `pip install meshstack` (no extra) from the wheel, as a CI machine
    that only previews has. Its pulumi is this interpreter's, so the lowest-SDK run in CI checks the slim
    install on the lowest SDK too. Not byte-compiled: the providers' hundred thousand files would take
    minutes to compile, and nothing here runs them often enough to notice."""
    venv = tmp_path_factory.mktemp("slim") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--no-compile"]
    subprocess.run(
        [*pip, str(wheel), f"pulumi=={version('pulumi')}"],
        check=True,
        timeout=900,
    )
    return venv


def _slim_meshstack(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(
        [str(venv / "bin" / "meshstack"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.mark.slow
def test_a_slim_install_has_no_jax_and_starts_validates_and_previews_a_project(slim: Path, tmp_path: Path) -> None:
    python = str(slim / "bin" / "python")
    absent = "import importlib.util as u; print([m for m in ('jax', 'matplotlib', 'numpy') if u.find_spec(m)])"
    where = subprocess.run([python, "-c", absent], capture_output=True, text=True, check=True, timeout=60)
    assert where.stdout.strip() == "[]"
    for args in (["init", "infra"], ["--project", "infra", "validate", "-s", "dev"]):
        done = _slim_meshstack(slim, *args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    done = _slim_meshstack(slim, "preview", "-s", "dev", "--json", cwd=tmp_path / "infra")
    assert done.returncode == 0, done.stderr
    preview = json.loads(done.stdout)
    assert preview["stack"] == "dev" and preview["resources"] and preview["cost"]["hourly_usd"] > 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["demo"], "demo"),
        (["run", "-s", "dev", "--local"], "workloads"),
        (["serve", "model"], "workloads"),
        (["export", "checkpoints", "out"], "workloads"),
        (["data", "prepare", "a.txt", "--tokenizer", "bytes", "--out", "shards"], "workloads"),
    ],
)
def test_a_slim_install_names_the_extra_a_command_needs(
    slim: Path, tmp_path: Path, args: list[str], extra: str
) -> None:
    """One line and exit 4 (a step could not run), naming the extra to install, never an ImportError."""
    assert _slim_meshstack(slim, "init", "infra", cwd=tmp_path).returncode == 0
    done = _slim_meshstack(slim, *args, cwd=tmp_path / "infra")
    assert done.returncode == 4, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"meshstack: `meshstack {args[0]}") and line.endswith(f"pip install 'meshstack[{extra}]'")
    assert "jax" in line and "Traceback" not in done.stderr and not list((tmp_path / "infra").glob("meshstack-demo"))


def _lowest_sdk(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "tools" / "lowest_sdk.py")], capture_output=True, text=True, timeout=60
    )


def test_ci_takes_the_lowest_sdk_from_the_pin(tmp_path: Path) -> None:
    """.ci/run installs what tools/lowest_sdk.py prints: the pin's lowest minor, and the dev extra's pytest
    and pytest-xdist."""
    done = _lowest_sdk(PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    [pin] = [d for d in pyproject["dependencies"] if d.startswith("pulumi>=")]
    lower = pin.removeprefix("pulumi>=").split(",")[0]
    assert done.stdout.splitlines() == [f"pulumi=={lower}.*", "pytest>=8.0", "pytest-xdist>=3.6,<4"]
    (tmp_path / "tools").mkdir()
    shutil.copy(PROJECT_ROOT / "tools" / "lowest_sdk.py", tmp_path / "tools")
    unpinned = (PROJECT_ROOT / "pyproject.toml").read_text().replace(pin, "pulumi")
    (tmp_path / "pyproject.toml").write_text(unpinned)
    refused = _lowest_sdk(tmp_path)
    assert refused.returncode == 1 and "no single `pulumi>=X.Y,...` dependency" in refused.stderr
