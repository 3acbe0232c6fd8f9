"""The shape the code keeps: layers that only point down, components usable without the stack spec, and
one preview that validates the spec once and prices the plan once."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import meshstack.cost
from meshstack.core.spec import StackSpec
from meshstack.core.stack_file import PROJECT_ROOT, find_project
from meshstack.preview.plan import preview_stack

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.slow
def test_the_layer_contract_holds_and_catches_an_upward_import(tmp_path: Path) -> None:
    kept = lint_imports(PROJECT_ROOT)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "2 kept, 0 broken" in kept.stdout
    copy = tmp_path / "tree"
    shutil.copytree(PROJECT_ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "*.pyc", "__pycache__", "tests"))
    spec = copy / "meshstack" / "core" / "spec" / "stack.py"
    spec.write_text(spec.read_text() + "\nfrom meshstack.preview import plan  # noqa\n")
    broken = lint_imports(copy)
    assert broken.returncode != 0
    assert "meshstack.core.spec.stack -> meshstack.preview.plan" in broken.stdout


@pytest.mark.slow
def test_the_slim_install_contract_catches_a_preview_module_that_reaches_jax(tmp_path: Path) -> None:
    """`pip install meshstack` has no JAX: a preview module importing the JAX programs (and so JAX)
    breaks the contract, as a direct import of numpy would."""
    copy = tmp_path / "tree"
    shutil.copytree(PROJECT_ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "*.pyc", "__pycache__", "tests"))
    render = copy / "meshstack" / "preview" / "render.py"
    render.write_text(
        render.read_text() + "\nfrom meshstack.workloads.jax import storage  # noqa\nimport numpy  # noqa\n"
    )
    broken = lint_imports(copy)
    assert broken.returncode != 0
    assert "the slim install needs no extra BROKEN" in broken.stdout
    assert "meshstack.preview.render -> meshstack.workloads.jax.storage" in broken.stdout
    assert "meshstack.preview.render -> numpy" in broken.stdout


@pytest.mark.slow
def test_a_plain_pulumi_program_builds_a_cluster_and_a_training_job_without_the_spec() -> None:
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "tests" / "fixtures" / "library" / "__main__.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin"},
    )
    result = json.loads(done.stdout)
    assert result["spec_imported"] is False
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in result["registered"]:
        by_type.setdefault(r["type"], []).append(r)
    [group] = by_type["aws:eks/nodeGroup:NodeGroup"]
    assert group["inputs"]["capacityType"] == "SPOT" and group["inputs"]["instanceTypes"] == ["g6.12xlarge"]
    assert group["inputs"]["scalingConfig"]["maxSize"] == 2
    [jobset] = by_type["kubernetes:jobset.x-k8s.io/v1alpha2:JobSet"]
    # The cluster's Kubernetes provider, handed to the component through opts, reaches its children.
    assert "pulumi:providers:kubernetes::lab-k8s" in jobset["provider"]
    pod = jobset["inputs"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert pod["nodeSelector"] == {"meshstack.io/node-pool": "gpu"}
    assert {"name": "JAX_NUM_PROCESSES", "value": "2"} in container["env"]
    assert by_type["kubernetes:core/v1:ServiceAccount"][0]["provider"] == jobset["provider"]


def test_one_preview_validates_the_spec_once_and_prices_the_plan_once(monkeypatch: pytest.MonkeyPatch) -> None:
    validations: list[str] = []
    estimates: list[int] = []
    validate, estimate = StackSpec.model_validate, meshstack.cost.estimate

    def counting_validate(data: Any, **kwargs: Any) -> StackSpec:
        validations.append(str(data.get("name")))
        return validate(data, **kwargs)

    def counting_estimate(*args: Any, **kwargs: Any) -> meshstack.cost.CostReport:
        estimates.append(1)
        return estimate(*args, **kwargs)

    monkeypatch.setattr(StackSpec, "model_validate", counting_validate)
    monkeypatch.setattr(meshstack.cost, "estimate", counting_estimate)
    monkeypatch.setattr("meshstack.preview.plan.estimate", counting_estimate)
    preview = preview_stack("prod-aws", find_project(PROJECT_ROOT))
    assert validations == ["prod-aws"]
    # prod-aws sets a budget, so the stack-cost-cap rule ran on the same plan: it used the preview's estimate.
    assert preview.spec.budget.max_hourly_usd is not None
    assert len(estimates) == 1


def test_the_budget_rule_prices_the_plan_itself_when_nothing_was_handed_over() -> None:
    """Under `pulumi preview --policy-pack` there is no meshstack preview: the rule must estimate on its own."""
    from meshstack.policies.rules.cost import cost_cap
    from tests.support.policy_views import governed, group

    resources = [*governed("prod", max_hourly_usd=100), group("h100", "p5.48xlarge", 2, desired=2)]
    [finding] = list(cost_cap(resources, {}))
    assert "over the cap of $100.00/hour" in finding.message


@pytest.mark.parametrize("module", ["meshstack.core.capacity", "meshstack.core.runs", "meshstack.preview.plan"])
def test_each_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    """No import cycle hides behind the order the CLI happens to import things in."""
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


BARE = {"components", "workloads", "policies"}


def test_nothing_imports_the_repository_folders_by_their_bare_names() -> None:
    """The folders are installed as meshstack.components, .workloads and .policies only (symlinks under
    meshstack/ in this checkout): a bare `import policies` would load a second copy here, and in a user's
    project it is the user's own package."""
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    bare = []
    for name in tracked.stdout.split():
        path = PROJECT_ROOT / name
        if path.is_symlink() or not path.is_file():
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=name)):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = [node.module.split(".")[0]]
            else:
                continue
            bare += [f"{name}:{node.lineno}" for root in roots if root in BARE]
    assert not bare, f"import these as meshstack.<folder>: {bare}"


PACKAGE_DIRS = ("meshstack", "components", "workloads", "policies", "stacks", "bench", "tools")
MAX_MODULE_LINES = 400


def module_lines() -> dict[str, int]:
    """Each Python module of the package folders by its path, with its line count (the symlinked folders
    under meshstack/ are the top-level ones, walked once)."""
    lines = {}
    for folder in PACKAGE_DIRS:
        for here, dirs, files in os.walk(PROJECT_ROOT / folder):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in (f for f in files if f.endswith(".py")):
                path = Path(here) / name
                lines[path.relative_to(PROJECT_ROOT).as_posix()] = len(path.read_text().splitlines())
    return lines


def test_no_module_is_over_400_lines() -> None:
    """A module past 400 lines holds more than one job: split it along them, into modules named for what
    they hold."""
    lines = module_lines()
    assert "meshstack/cli/__init__.py" in lines and "components/aws/eks.py" in lines
    over = [f"{name} ({count} lines)" for name, count in sorted(lines.items()) if count > MAX_MODULE_LINES]
    assert not over, f"over {MAX_MODULE_LINES} lines, split it along its jobs: {', '.join(over)}"


def test_the_tests_are_laid_out_like_the_source_tree() -> None:
    """A test module sits in the folder of the source it tests (tests/core for meshstack/core, tests/
    components/aws for components/aws...); at the root only those about the whole project; helpers the
    tests share in tests/support, never imported out of another test module."""
    tests = PROJECT_ROOT / "tests"
    modules = [p for p in sorted(tests.rglob("*.py")) if p.relative_to(tests).parts[0] != "fixtures"]
    misplaced, cross = [], []
    for path in modules:
        where = path.parent.relative_to(tests)
        source = (PROJECT_ROOT / where, PROJECT_ROOT / "meshstack" / where, PROJECT_ROOT / "meshstack" / f"{where}.py")
        if where.parts[:1] not in ((), ("support",)) and not any(s.exists() for s in source):
            misplaced.append(str(path.relative_to(tests)))
        cross += [
            f"{path.name}: {line}" for line in path.read_text().splitlines() if line.startswith("from tests.test")
        ]
    assert not misplaced, f"no source folder or module of these names: {misplaced}"
    helpers = [p.name for p in tests.glob("*.py") if not p.name.startswith("test_") and p.stem != "conftest"]
    assert helpers == ["__init__.py"], f"helpers belong in tests/support: {helpers}"
    assert not cross, f"move what they share into tests/support: {cross}"
