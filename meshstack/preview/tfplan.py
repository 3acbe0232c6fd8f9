"""A preview's cloud resources as a Terraform plan (the JSON `terraform show -json PLANFILE` writes), so
checkov, trivy, KICS, OPA/conftest and any other Terraform-plan scanner can judge a Pulumi stack.

Every AWS and Google Cloud resource becomes a `create` in `resource_changes` and a resource of
`planned_values.root_module`, under its Terraform type and with its properties renamed and reshaped as
Terraform holds them (meshstack.preview.terraform_types). Kubernetes objects are not Terraform-provider
shapes here: `--manifests` writes them as the manifests the cluster receives, which is what Kubernetes
scanners read. Components and providers are Pulumi's own and have no Terraform counterpart.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshstack.preview.manifests import integral
from meshstack.preview.recorder import Resource
from meshstack.preview.terraform_types import Fields, field_name, providers, terraform_type

FORMAT_VERSION = "1.2"
TERRAFORM_VERSION = "1.9.8"  # the plan format's producer as a scanner expects one; no Terraform runs
SKIPPED_KEYS = frozenset({"__defaults", "urn"})


@dataclass(frozen=True)
class Export:
    """The plan, how many resources it holds, what was left out, and each address's Pulumi URN."""

    plan: dict[str, Any]
    written: int
    kubernetes: int
    untyped: list[str]
    urns: dict[str, str]


def values(props: Any, fields: Fields) -> Any:
    """Pulumi properties as Terraform attributes: names in snake_case as Terraform spells them, a flattened
    MaxItems=1 block back in its one-element list, every block's own fields likewise."""
    out: dict[str, Any] = {}
    for key, value in props.items():
        if key in SKIPPED_KEYS:
            continue
        name = field_name(key, fields)
        spec = fields.get(name)
        if spec is None:
            out[name] = value
            continue
        nested = spec[1] if len(spec) > 1 else {}
        items = value if isinstance(value, list) else ([] if value is None else [value])
        out[name] = [values(i, nested) if isinstance(i, dict) else i for i in items]
    return out


def _address_name(name: str) -> str:
    """A Terraform resource name: letters, digits, '_' and '-', starting with a letter or '_'."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    return safe if re.match(r"^[A-Za-z_]", safe) else f"_{safe}"


IDENTIFIERS = ("id", "arn", "name", "bucket")


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {v for v in value if isinstance(v, str)}
    return set()


def references(
    resource: Resource, attributes: dict[str, Any], addresses: dict[str, tuple[str, Resource]]
) -> dict[str, Any]:
    """The configuration's expressions: which attribute names which resource it depends on, found by the
    dependency's id, ARN or name in the attribute's value. Graph checks (a bucket's public access block, a
    security group's attachment) follow these, as they follow Terraform's own references."""
    expressions: dict[str, Any] = {}
    for urn in resource.dependencies:
        if urn not in addresses:
            continue
        address, dependency = addresses[urn]
        known = {k: v for k in IDENTIFIERS if isinstance(v := dependency.outputs.get(k), str) and v}
        for key, value in attributes.items():
            for attribute, identifier in known.items():
                if identifier in _strings(value):
                    expressions.setdefault(key, {"references": []})["references"] += [f"{address}.{attribute}", address]
    return expressions


def to_plan(resources: Sequence[Resource]) -> Export:
    planned, changes, untyped, configured = [], [], [], []
    kubernetes = 0
    seen: Counter[str] = Counter()
    addresses: dict[str, tuple[str, Resource]] = {}
    typed = []
    for r in resources:
        if not r.custom:
            continue
        if r.type.startswith("kubernetes:"):
            kubernetes += 1
            continue
        found = terraform_type(r.type)
        if found is None:
            if r.type.split(":", 1)[0] in providers():
                untyped.append(r.type)
            continue
        name = _address_name(r.name)
        seen[f"{found.type}.{name}"] += 1
        if seen[f"{found.type}.{name}"] > 1:
            name = f"{name}_{seen[f'{found.type}.{name}']}"
        address = f"{found.type}.{name}"
        attributes = integral(values(r.outputs or r.inputs, found.fields))
        addresses[r.urn] = (address, r)
        typed.append((r, address, attributes))
        common = {"address": address, "mode": "managed", "type": found.type, "name": name}
        terraform = providers()[found.provider]
        config_key, provider = terraform.config_key, terraform.address
        configured.append(
            {
                **common,
                "provider_config_key": config_key,
                "schema_version": 0,
            }
        )
        planned.append({**common, "provider_name": provider, "schema_version": 0, "values": attributes})
        changes.append(
            {
                **common,
                "provider_name": provider,
                "change": {
                    "actions": ["create"],
                    "before": None,
                    "after": attributes,
                    "after_unknown": {},
                    "before_sensitive": False,
                    "after_sensitive": {},
                },
            }
        )
    plan = {
        "format_version": FORMAT_VERSION,
        "terraform_version": TERRAFORM_VERSION,
        "planned_values": {"root_module": {"resources": planned}},
        "resource_changes": changes,
        "configuration": {
            "provider_config": {
                p.config_key: {"name": p.config_key, "full_name": p.address} for p in providers().values()
            },
            "root_module": {
                "resources": [
                    {**c, "expressions": references(r, attributes, addresses)}
                    for c, (r, _, attributes) in zip(configured, typed, strict=True)
                ]
            },
        },
    }
    urns = {address: urn for urn, (address, _) in addresses.items()}
    return Export(plan, len(planned), kubernetes, sorted(set(untyped)), urns)


def write_plan(resources: Sequence[Resource], path: Path) -> Export:
    export = to_plan(resources)
    path.write_text(json.dumps(export.plan, indent=1, sort_keys=True, default=str) + "\n")
    return export
