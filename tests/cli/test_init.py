"""`meshstack init`, run as a user runs it in a folder outside this checkout: a project that validates and
previews offline as written, with the schema its stack file's modeline names, and a refusal, not a
clobbered folder, where the folder is someone else's."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from meshstack.core.stack_file import PROJECT_ROOT
from meshstack.core.workspace import MARKER, claim
from meshstack.scaffold import installed_version
from tests.support.cli_project import init, meshstack

EXPECTED = {
    "Pulumi.yaml",
    "__main__.py",
    "Pulumi.dev.yaml",
    "stack.schema.json",
    "requirements.txt",
    ".gitignore",
    "policies/PulumiPolicy.yaml",
    "policies/__main__.py",
    "policies/config/dev.json",
    ".github/workflows/meshstack-preview.yml",
    ".github/workflows/meshstack-up.yml",
}


def files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and ".git/" not in str(p) + "/"}


@pytest.mark.slow
@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_a_new_project_validates_and_previews_offline_as_written(tmp_path: Path, cloud: str) -> None:
    project = init(tmp_path / "ml-infra", cloud)
    assert files(project) == EXPECTED
    assert not (project / MARKER).exists(), "the project is the user's: nothing meshstack does may clear it"
    pulumi = yaml.safe_load((project / "Pulumi.yaml").read_text())
    assert pulumi["name"] == "ml-infra" and pulumi["runtime"]["options"]["virtualenv"] == ".venv"
    assert (project / "__main__.py").read_text() == (PROJECT_ROOT / "stacks" / "__main__.py").read_text()
    assert (project / "policies/__main__.py").read_text() == (PROJECT_ROOT / "policies/__main__.py").read_text()
    assert f"meshstack=={installed_version()}" in (project / "requirements.txt").read_text().splitlines()

    text = (project / "Pulumi.dev.yaml").read_text()
    assert text.splitlines()[0] == "# yaml-language-server: $schema=stack.schema.json"
    schema = json.loads((project / "stack.schema.json").read_text())
    assert schema == json.loads(meshstack("schema", cwd=project).stdout), "the schema the modeline names"
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(text))

    listed = meshstack("stacks", "--json", cwd=project)
    [entry] = json.loads(listed.stdout)
    assert entry["stack"] == "dev" and entry["cloud"] == cloud and entry["region"]
    validated = meshstack("validate", "-s", "dev", "--json", cwd=project)
    assert validated.returncode == 0, validated.stdout
    assert json.loads(validated.stdout)["cloud"] == cloud
    preview = meshstack("preview", "-s", "dev", "--json", cwd=project)
    assert preview.returncode == 0, preview.stderr
    report = json.loads(preview.stdout)
    assert [v for v in report["policy"]["violations"] if v["level"] == "mandatory"] == []
    assert report["cost"]["running_hourly_usd"] > 0


def test_init_writes_into_a_fresh_clone_and_the_working_directory(tmp_path: Path) -> None:
    clone = tmp_path / "repo"
    (clone / ".git").mkdir(parents=True)
    (clone / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (clone / ".venv" / "bin").mkdir(parents=True)  # where meshstack itself was installed
    done = meshstack("init", cwd=clone)
    assert done.returncode == 0, done.stderr
    assert files(clone) >= EXPECTED and "next: meshstack validate -s dev" in done.stdout


@pytest.mark.parametrize("setup", ["user-file", "file-in-the-way", "twice"])
def test_init_refuses_a_folder_that_is_not_its_own(tmp_path: Path, setup: str) -> None:
    target = tmp_path / "infra"
    if setup == "user-file":
        target.mkdir()
        (target / "notes.md").write_text("mine\n")
    elif setup == "file-in-the-way":
        target.write_text("a file\n")
    else:
        init(target)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    done = meshstack("init", str(target), cwd=tmp_path)
    assert done.returncode == 64, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("meshstack: init ")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before, "nothing was written"


def test_init_replaces_a_folder_meshstack_owns(tmp_path: Path) -> None:
    owned = claim(tmp_path / "scratch", "--out")
    (owned / "old-report.html").write_text("old\n")
    done = meshstack("init", str(owned), "--cloud", "gcp", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert files(owned) == EXPECTED, "meshstack's own leftovers cleared, its marker gone with them"
