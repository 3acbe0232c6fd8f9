"""`meshstack init`: a project that validates and previews offline as written, and deploys with the
Pulumi CLI or the GitOps workflows it brings.

The files are package data (meshstack/templates). A folder is only written into when it is new, empty
(a fresh `git init` or clone's .git aside) or marked as meshstack's own (the marker `demo --out` and
`run --workdir` leave); the project it leaves behind is the user's, so it carries no marker: nothing
meshstack does later may clear it.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

from meshstack.core import clouds
from meshstack.core.errors import UsageError
from meshstack.core.workspace import MARKER, clear

TEMPLATES = resources.files("meshstack.templates")
STACK = "dev"
SCHEMA_FILE = "stack.schema.json"
# What init may find in a folder it writes into: a repository's own metadata, and the virtualenv meshstack
# was installed into (the .venv Pulumi.yaml names; the .gitignore init writes keeps it out of git).
TOLERATED = (".git", ".venv")
# Template path -> where it goes in the project (dot-files are kept without their dot in the package).
PROJECT_FILES = {
    "project/Pulumi.yaml": "Pulumi.yaml",
    "project/main.py.tmpl": "__main__.py",
    "project/requirements.txt": "requirements.txt",
    "project/gitignore": ".gitignore",
    "project/policies/PulumiPolicy.yaml": "policies/PulumiPolicy.yaml",
    "project/policies/pack_main.py.tmpl": "policies/__main__.py",
    "project/policies/config/dev.json": f"policies/config/{STACK}.json",
    "project/github/workflows/meshstack-preview.yml": ".github/workflows/meshstack-preview.yml",
    "project/github/workflows/meshstack-up.yml": ".github/workflows/meshstack-up.yml",
}


def installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("meshstack")
    except PackageNotFoundError:
        return "0.1.0"


def project_name(folder: Path) -> str:
    """A Pulumi project name (letters, digits, '-', '_' and '.') and a GCP label value from the folder's name."""
    name = re.sub(r"[^a-z0-9_-]+", "-", folder.resolve().name.lower()).strip("-_")[:63]
    return name or "meshstack-project"


def _refuse_foreign(folder: Path) -> bool:
    """Whether `folder` may be written into; True when it is meshstack's own and must be cleared first."""
    for parent in (folder, *folder.parents):
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"init {folder}: {parent} is a file, not a folder")
    if not folder.exists():
        return False
    entries = [p.name for p in folder.iterdir() if p.name not in TOLERATED]
    if not entries:
        return False
    if MARKER in entries:
        return True
    shown = ", ".join(sorted(entries)[:3]) + (", ..." if len(entries) > 3 else "")
    raise UsageError(
        f"init {folder}: the folder is not empty ({shown}) and not meshstack's own; init writes only into a "
        "new or empty folder (a fresh clone, `git init` or a .venv is fine), such as: meshstack init my-infra"
    )


def init_project(folder: Path, cloud: str) -> list[Path]:
    """Writes the project into `folder` and returns the files written, relative to it."""
    from meshstack.core.schema import stack_schema

    owned = _refuse_foreign(folder)
    try:
        if owned:
            clear(folder, "init")
            (folder / MARKER).unlink()
        folder.mkdir(parents=True, exist_ok=True)
        name, version = project_name(folder), installed_version()
        files = {target: TEMPLATES.joinpath(source).read_text() for source, target in PROJECT_FILES.items()}
        files[f"Pulumi.{STACK}.yaml"] = clouds.get(cloud).stack_template.read_text()
        files[SCHEMA_FILE] = json.dumps(stack_schema(), indent=2) + "\n"
        written = []
        for relative, text in files.items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text.replace("@PROJECT@", name).replace("@VERSION@", version))
            written.append(Path(relative))
    except OSError as exc:
        raise UsageError(f"init {folder}: cannot write there ({exc.strerror})") from None
    return written
