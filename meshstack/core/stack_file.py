"""Reads a stack's typed spec from its Pulumi stack file or from the running program's config.

The stack file is the one source of truth: `pulumi up` hands its structured
config to the program as JSON strings, the offline preview reads the same file,
and both arrive at `spec_from_config`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from meshstack.core.catalog import load_catalog
from meshstack.core.errors import SpecError, spec_problems
from meshstack.core.spec import StackSpec

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Config keys from provider namespaces that the spec reads, and the field they fill.
PROVIDER_KEYS = {"aws:region": "region", "gcp:region": "region", "gcp:project": "project", "gcp:zone": "zone"}


@dataclass(frozen=True)
class Project:
    """What Pulumi.yaml says: the project's name, its program and where stack files live."""

    root: Path
    name: str
    program: Path
    stacks_dir: Path

    def stack_file(self, stack: str) -> Path:
        return self.stacks_dir / f"Pulumi.{stack}.yaml"

    def stacks(self) -> list[str]:
        return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in self.stacks_dir.glob("Pulumi.*.yaml"))


def _yaml_file(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecError([("", f"cannot read {path}: {exc.strerror}")]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([("", f"{path.name}{line}: not valid YAML ({problem})")]) from exc


def find_project(start: Path | None = None) -> Project:
    """The Pulumi project holding `start` (default: the working directory), else meshstack's own."""
    here = (start or Path.cwd()).resolve()
    root = next((d for d in (here, *here.parents) if (d / "Pulumi.yaml").is_file()), PROJECT_ROOT)
    data = _yaml_file(root / "Pulumi.yaml") or {}
    if not isinstance(data, dict) or "name" not in data:
        raise SpecError([("name", "Pulumi.yaml must name the project")], str(root / "Pulumi.yaml"))
    main = root / str(data.get("main", "."))
    return Project(
        root=root,
        name=str(data["name"]),
        program=main / "__main__.py" if main.is_dir() else main,
        stacks_dir=root / str(data.get("stackConfigDir", ".")),
    )


def read_stack_config(project: Project, stack: str, path: Path | None = None) -> dict[str, Any]:
    """The `config:` mapping of Pulumi.<stack>.yaml (or of `path`), values as written."""
    path = path or project.stack_file(stack)
    if not path.is_file():
        known = ", ".join(project.stacks()) or "none"
        raise SpecError([("", f"no stack '{stack}': {path} does not exist (stacks: {known})")])
    data = _yaml_file(path) or {}
    config = data.get("config", {}) if isinstance(data, dict) else None
    if not isinstance(config, dict):
        raise SpecError([("config", "must be a mapping of config keys")], path.name)
    return config


def spec_from_config(stack: str, config: dict[str, Any], source: str = "") -> StackSpec:
    """Validate a stack's config. Keys outside meshstack:* and the provider keys belong to others."""
    cloud = "gcp" if any(key.startswith("gcp:") for key in config) else "aws"
    data: dict[str, Any] = {"name": stack, "cloud": cloud}
    for key, value in config.items():
        namespace, _, field = key.partition(":")
        if key in PROVIDER_KEYS:
            data[PROVIDER_KEYS[key]] = value
        elif namespace == "meshstack":
            data[field] = value
    try:
        return StackSpec.model_validate(data, context={"catalog": load_catalog(cloud=cloud)})
    except ValidationError as exc:
        problems = [(_config_key(path, cloud), msg) for path, msg in spec_problems(exc, StackSpec)]
        raise SpecError(problems, source) from exc


def _config_key(path: str, cloud: str) -> str:
    """A top-level field filled from a provider key is reported under that key (aws:region, gcp:zone)."""
    for key, field in PROVIDER_KEYS.items():
        if path == field and key.startswith(f"{cloud}:"):
            return key
    return path


def load_stack(stack: str, project: Project | None = None) -> StackSpec:
    project = project or find_project()
    return spec_from_config(stack, read_stack_config(project, stack), project.stack_file(stack).name)


def runtime_config_values(config: dict[str, Any]) -> dict[str, str]:
    """Config as the engine hands it to a program: strings, with structured values as JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def spec_from_runtime() -> StackSpec:
    """Inside a Pulumi program: the spec from the config the engine (or the mock runtime) set."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    config: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith("meshstack:") and isinstance(value, str) and value[:1] in "[{":
            config[key] = json.loads(value)
        else:
            config[key] = value
    return spec_from_config(pulumi.get_stack(), config, f"Pulumi.{pulumi.get_stack()}.yaml")
