"""Reads a stack's typed spec from its Pulumi stack file or from the running program's config.

The stack file is the one source of truth: `pulumi up` hands its structured
config to the program as JSON strings, the offline preview reads the same file,
and both arrive at `spec_from_config`.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from meshstack.core import clouds
from meshstack.core.catalog import Catalog, known_clouds, load_catalog
from meshstack.core.errors import SpecError, spec_problems
from meshstack.core.input_files import load_yaml_file
from meshstack.core.spec import StackSpec

PROJECT_ROOT = Path(__file__).resolve().parents[2]


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
    return load_yaml_file(path)


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
    if not path.exists():
        known = ", ".join(project.stacks()) or "none"
        raise SpecError([("", f"no stack '{stack}': {path} does not exist (stacks: {known})")])
    data = _yaml_file(path) or {}
    config = data.get("config", {}) if isinstance(data, dict) else None
    if not isinstance(config, dict):
        raise SpecError([("config", "must be a mapping of config keys")], path.name)
    for key in config:
        if not isinstance(key, str):  # YAML reads `1:` or `null:` as a number or nothing
            raise SpecError([("config", f"the key {key!r} is not a name such as aws:region")], path.name)
    return config


@dataclass(frozen=True)
class StackEntry:
    """A stack as its file names it, read without validating the spec: what CI needs to choose a runner's
    credentials and region before the preview reports whatever else the file gets wrong."""

    stack: str
    file: str
    cloud: str | None
    region: str | None

    def to_json(self) -> dict[str, str | None]:
        return {"stack": self.stack, "file": self.file, "cloud": self.cloud, "region": self.region}


def stack_entries(project: Project) -> list[StackEntry]:
    entries = []
    for stack in project.stacks():
        path = project.stack_file(stack)
        relative = str(path.relative_to(project.root)) if path.is_relative_to(project.root) else str(path)
        try:
            config = read_stack_config(project, stack)
            cloud = cloud_of(config)
        except SpecError:
            entries.append(StackEntry(stack, relative, None, None))
            continue
        region = config.get(load_catalog(cloud=cloud).facts.config_keys["region"])
        entries.append(StackEntry(stack, relative, cloud, region if isinstance(region, str) else None))
    return entries


def cloud_of(config: dict[str, Any], source: str = "") -> str:
    """The cloud whose provider keys the stack sets (gcp:project, aws:region...); AWS when none does."""
    namespaces = {key.partition(":")[0] for key in config}
    clouds = [c for c in known_clouds() if c in namespaces]
    if len(clouds) > 1:
        problem = f"keys of more than one cloud ({', '.join(clouds)}): a stack targets one"
        raise SpecError([("config", problem)], source)
    return clouds[0] if clouds else "aws"


# Fields of the spec that no meshstack:* key sets: the stack's name comes from its file, its cloud from
# the provider keys it sets, and its location from those keys (aws:region; gcp:project, gcp:region,
# gcp:zone), the region beside the cloud's own settings. A meshstack:region beside aws:region would price
# and police one region and deploy to another.
DERIVED = ("name", "cloud", "region", "settings")


def derived(field: str) -> bool:
    """Whether a meshstack:* key would set what the stack's file name or provider keys set."""
    return field in DERIVED or any(field in c.settings.model_fields for c in clouds.registered().values())


def spec_keys() -> list[str]:
    """The meshstack:* keys a stack file may set, in the spec's order."""
    return [f"meshstack:{name}" for name in StackSpec.model_fields if name not in DERIVED]


def accepted_keys(cloud: str) -> list[str]:
    """Every key the validator reads on a stack of `cloud`: that cloud's provider keys, then meshstack:*."""
    return [*load_catalog(cloud=cloud).facts.config_keys.values(), *spec_keys()]


def _derived_key_problem(field: str, catalog: Catalog) -> str:
    keys = catalog.facts.config_keys
    if field == "name":
        return "the stack's name is its file's (Pulumi.<stack>.yaml), not a key"
    if field == "cloud":
        every = "; ".join(f"{c}: {', '.join(load_catalog(cloud=c).facts.config_keys.values())}" for c in known_clouds())
        return f"the cloud is the one whose provider keys the stack sets ({every}), not a key"
    if field in keys:
        return f"not a stack-file key: {field} is {keys[field]}"
    if field == "zone":
        return "not a stack-file key: each node pool names its zone (node_pools[].zone) and network.zones the VPC's"
    return f"not a stack-file key on {catalog.cloud.upper()}: it has no {field}"


def spec_from_config(stack: str, config: dict[str, Any], source: str = "") -> StackSpec:
    """Validate a stack's config. Keys outside meshstack:* and the provider keys belong to others."""
    cloud = cloud_of(config, source)
    catalog = load_catalog(cloud=cloud)
    provider_keys = {key: field for field, key in catalog.facts.config_keys.items()}
    data: dict[str, Any] = {"name": stack, "cloud": cloud}
    refused: list[tuple[str, str]] = []
    for key, value in config.items():
        namespace, _, field = key.partition(":")
        if key in provider_keys and provider_keys[key] in StackSpec.model_fields:
            data[provider_keys[key]] = value
        elif key in provider_keys:
            data.setdefault("settings", {})[provider_keys[key]] = value
        elif namespace == "meshstack" and derived(field):
            refused.append((key, _derived_key_problem(field, catalog)))
        elif namespace == "meshstack":
            data[field] = value
    if refused:
        raise SpecError(refused, source)
    try:
        return StackSpec.model_validate(data, context={"catalog": catalog})
    except ValidationError as exc:
        problems = [_config_problem(path, msg, catalog) for path, msg in spec_problems(exc, StackSpec)]
        raise SpecError(problems, source) from exc


def _config_problem(path: str, message: str, catalog: Catalog) -> tuple[str, str]:
    """A top-level unknown field is the meshstack:* key it was written as, and the keys it could be."""
    if "." not in path and "[" not in path and path not in StackSpec.model_fields:
        return f"meshstack:{path}", f"unknown key; allowed meshstack keys are {', '.join(spec_keys())}"
    return _config_key(path, catalog), message


def _config_key(path: str, catalog: Catalog) -> str:
    """A field filled from a provider key is reported under that key (aws:region, gcp:zone)."""
    return catalog.facts.config_keys.get(path.removeprefix("settings."), path)


def load_stack(stack: str, project: Project | None = None) -> StackSpec:
    project = project or find_project()
    return spec_from_config(stack, read_stack_config(project, stack), project.stack_file(stack).name)


def runtime_config_values(config: dict[str, Any]) -> dict[str, str]:
    """Config as the engine hands it to a program: strings, with structured values as JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


# The spec `meshstack preview` has already validated from the same stack file, handed to the program it
# runs under mocks so that one preview validates the spec once. Unset under `pulumi up`.
_VALIDATED: ContextVar[StackSpec | None] = ContextVar("meshstack_validated_spec", default=None)


def hand_validated(spec: StackSpec) -> None:
    """For the program about to run in this context: its spec is validated already."""
    _VALIDATED.set(spec)


def spec_from_runtime() -> StackSpec:
    """Inside a Pulumi program: the spec from the config the engine (or the mock runtime) set."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    validated = _VALIDATED.get()
    if validated is not None and validated.name == pulumi.get_stack():
        return validated

    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    config: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith("meshstack:") and isinstance(value, str) and value[:1] in "[{":
            config[key] = json.loads(value)
        else:
            config[key] = value
    return spec_from_config(pulumi.get_stack(), config, f"Pulumi.{pulumi.get_stack()}.yaml")
