"""A third cloud from one folder: tests/fixtures/clouds holds the package `fakecloud` (its Cloud, catalog,
first stack file, platform, pricing and mocks) and the entry point that registers it, as `pip install`
of a plugin would leave them. A user's `meshstack init --cloud fakecloud`, `validate` and `preview` then
scaffold, build, price and police a stack on it, with nothing of meshstack changed. README "Adding a
cloud" is written from this folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from meshstack.core.stack_file import PROJECT_ROOT
from tests.support.cli_project import meshstack

PLUGINS = PROJECT_ROOT / "tests" / "fixtures" / "clouds"
ENV = {"PYTHONPATH": os.pathsep.join((str(PROJECT_ROOT), str(PLUGINS)))}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fake") / "infra"
    done = meshstack("init", str(root), "--cloud", "fakecloud", cwd=root.parent, env_extra=ENV)
    assert done.returncode == 0, done.stderr
    return root


def test_the_fake_cloud_is_registered_from_its_folder_alone(project: Path) -> None:
    assert "fakecloud:region: fk-east1" in (project / "Pulumi.dev.yaml").read_text()
    done = meshstack("validate", "-s", "dev", cwd=project, env_extra=ENV)
    assert done.returncode == 0, done.stderr
    assert "dev: valid (1 cluster(s), 2 node pool(s)" in done.stdout
    # Without the folder on the path no cloud owns fakecloud:region, and the stack reads as AWS's.
    outside = meshstack("validate", "-s", "dev", cwd=project)
    assert outside.returncode == 2 and "aws:region: is required" in outside.stderr


@pytest.mark.slow
def test_a_stack_on_the_fake_cloud_previews_with_its_resources_cost_and_policy(project: Path) -> None:
    done = meshstack("preview", "-s", "dev", "--json", cwd=project, env_extra=ENV)
    report = json.loads(done.stdout)
    types = [r["type"] for r in report["resources"]]
    assert types.count("fakecloud:compute/pool:Pool") == 2
    assert {"fakecloud:compute/cluster:Cluster", "fakecloud:storage/bucket:Bucket"} <= set(types)
    assert "kubernetes:helm.sh/v3:Release" in types  # meshstack's add-ons, on the fake cluster's provider
    cost = report["cost"]
    assert cost["price_source"] == "FakeCloud's price list (made up for the test)"
    # Idle: the control plane and the system pool's one on-demand node; at peak the GPU pool's two nodes too.
    assert cost["idle_hourly_usd"] == pytest.approx(0.25 + 0.2)
    assert cost["peak_hourly_usd"] == pytest.approx(0.25 + 2 * 0.2 + 2 * 1.0)
    # The pack reads the fake cloud's pools through its pricing module: a dev pool on-demand that keeps a
    # node fails the dev cost rule, and the preview exits 1 on it.
    [violation] = report["policy"]["violations"]
    assert violation["id"] == "MS-COST-004" and violation["urn"].endswith(
        "fakecloud:compute/pool:Pool::dev-main-system"
    )
    assert done.returncode == 1


def test_the_readme_lists_every_file_the_fake_cloud_took() -> None:
    """README "Adding a cloud" counts and names the folder's files: a file added here must be listed there."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("### Adding a cloud", 1)[1].split("\n### ", 1)[0]
    files = sorted(
        str(p.relative_to(PLUGINS)) for p in PLUGINS.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    assert f"It took {len(files)} files, all in that one\nfolder" in section
    for path in files:
        assert f"`{path}`" in section, path


def test_a_plugin_that_registers_no_cloud_of_its_name_is_one_line_from_the_cli(tmp_path: Path) -> None:
    """The registry is read while the parser's `--cloud` choices are built, before any command runs."""
    broken = tmp_path / "meshstack_broken-0.1.dist-info"
    broken.mkdir()
    (broken / "METADATA").write_text("Metadata-Version: 2.1\nName: meshstack-broken\nVersion: 0.1\n")
    (broken / "entry_points.txt").write_text("[meshstack.clouds]\nbroken = fakecloud:CLOUD\n")
    env = {"PYTHONPATH": os.pathsep.join((str(PROJECT_ROOT), str(PLUGINS), str(tmp_path)))}
    done = meshstack("validate", "-s", "dev", cwd=tmp_path, env_extra=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "meshstack.clouds:broken (fakecloud:CLOUD) must name a Cloud whose name is 'broken'" in done.stderr
