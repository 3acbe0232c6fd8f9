"""What a Pulumi resource is in Terraform: its resource type, and where its properties sit.

pulumi-aws and pulumi-gcp are bridged from the Terraform providers, so every Pulumi resource of theirs is
a Terraform resource under another name: `gcp:container/cluster:Cluster` is `google_container_cluster`,
its `nodeConfig` is the `node_config` block, a one-element list in Terraform that the bridge flattens
into an object (MaxItems=1), and a list block named in the singular (`node_pool`) gets a plural Pulumi
name (`nodePools`). Each cloud's table (its Cloud.terraform, components/<cloud>/terraform.json) holds
that mapping as the bridge metadata gives it (GCP's, extracted by tools/extract_bridge_metadata.py) or
as far as it could be read (AWS's, whose blocks come from the installed SDK's own types: see its
`source`).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshstack.core import clouds
from meshstack.core.clouds import TerraformProvider

# {terraform field: [MaxItems=1 (1) or a list (0), {its block's fields}?]}
Fields = dict[str, list[Any]]
ARGS = re.compile(r"'(\w+Args)'")


@dataclass(frozen=True)
class TerraformType:
    provider: str
    type: str
    fields: Fields
    plural_blocks: frozenset[str] = frozenset()


@functools.cache
def providers() -> dict[str, TerraformProvider]:
    """Each registered cloud's Terraform provider, by its Pulumi package."""
    return {c.name: c.terraform for c in clouds.registered().values() if c.terraform is not None}


@functools.cache
def table(provider: str) -> dict[str, Any]:
    return json.loads(providers()[provider].table.read_text())


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def singular(name: str) -> str:
    """The bridge's plural undone: `node_pools` -> `node_pool`, `policies` -> `policy`."""
    if name.endswith("ies"):
        return name[:-3] + "y"
    if name.endswith(("sses", "xes", "ches", "shes")):
        return name[:-2]
    return name[:-1] if name.endswith("s") and not name.endswith("ss") else name


def _sdk_class(token: str) -> Any:
    spec = importlib.util.find_spec(f"pulumi_{token.split(':', 1)[0]}")
    assert spec is not None and spec.origin is not None
    modules = json.loads(Path(spec.origin).read_text().split('resource_modules="""', 1)[1].split('"""', 1)[0])
    for entry in modules:
        if token in entry["classes"]:
            return getattr(importlib.import_module(entry["fqn"]), entry["classes"][token])
    raise KeyError(token)


def _sdk_fields(function: Any, inputs: Any, plural: frozenset[str] = frozenset(), depth: int = 0) -> Fields:
    """The block-typed parameters of an SDK initializer, keyed by their Terraform names: the Python name,
    singular again for a list block the bridge pluralized (unless Terraform's own name is plural)."""
    out: Fields = {}
    for name, parameter in inspect.signature(function).parameters.items():
        found = ARGS.search(str(parameter.annotation))
        if found is None or depth > 6:
            continue
        nested = getattr(inputs, found.group(1), None)
        sub = _sdk_fields(nested.__init__, inputs, frozenset(), depth + 1) if nested is not None else {}
        listed = "Sequence[" in str(parameter.annotation)
        out[singular(name) if listed and name not in plural else name] = [0 if listed else 1, *([sub] if sub else [])]
    return out


@functools.cache
def _sdk_blocks(token: str, plural: frozenset[str]) -> Fields:
    cls = _sdk_class(token)
    inputs = importlib.import_module(cls.__module__.rsplit(".", 1)[0] + "._inputs")
    return _sdk_fields(cls._internal_init, inputs, plural)


def terraform_type(token: str) -> TerraformType | None:
    """The Terraform type of a provider resource, None where the tables know none (Kubernetes, components)."""
    provider = token.split(":", 1)[0]
    if provider not in providers():
        return None
    entry = table(provider)["resources"].get(token)
    if entry is None:
        return None
    if "fields" in entry:
        return TerraformType(provider, entry["type"], entry["fields"])
    # A table that lists no blocks (aws.json) has them read from the installed SDK's own types.
    plural = frozenset(table(provider).get("plural_blocks", {}).get(token, ()))
    return TerraformType(provider, entry["type"], _sdk_blocks(token, plural), plural)


def field_name(key: str, fields: Fields) -> str:
    """The Terraform name of a Pulumi property: its snake_case, or the singular a list block had before the
    bridge pluralized it."""
    name = snake(key)
    if name in fields:
        return name
    one = singular(name)
    return one if one in fields and fields[one][0] == 0 else name
