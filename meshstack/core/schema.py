"""The JSON Schema of a stack file as it is written: Pulumi.<stack>.yaml with its `config:` mapping.

Derived from the spec and from the keys the validator reads (meshstack.core.stack_file), so the schema
cannot drift from what `validate` accepts: each spec field a stack file sets becomes its
`meshstack:<field>` key, and each cloud's catalog adds its provider keys (aws:region, gcp:project...),
its regions and its accelerator and instance type names, so an editor completes them. A stack sets one
cloud's provider keys and no other cloud's, as the validator requires.
"""

from __future__ import annotations

from typing import Any

from meshstack.core.catalog import known_clouds, load_catalog
from meshstack.core.clouds import get as get_cloud
from meshstack.core.spec import StackSpec
from meshstack.core.stack_file import DERIVED, spec_keys

SCHEMA_ID = "https://meshstack.dev/schemas/stack-file.json"
# Pulumi's own top-level keys of a stack file (secrets and ESC environments).
PULUMI_KEYS = ("secretsprovider", "encryptedkey", "encryptionsalt", "environment")


def stack_schema() -> dict[str, Any]:
    spec = StackSpec.model_json_schema()
    fields: dict[str, Any] = spec["properties"]
    config: dict[str, Any] = {key: fields[key.partition(":")[2]] for key in spec_keys()}
    accelerators: set[str] = set()
    instance_types: set[str] = set()
    per_cloud = []
    clouds = known_clouds()
    for cloud in clouds:
        catalog = load_catalog(cloud=cloud)
        facts = catalog.facts
        accelerators |= set(catalog.accelerators)
        instance_types |= set(catalog.instance_types)
        own = get_cloud(cloud).settings.model_fields
        for field, key in facts.config_keys.items():
            described = fields[field].get("description", "") if field in fields else own[field].description
            config[key] = {"type": "string", "description": described or ""}
        config[facts.config_keys["region"]]["enum"] = list(facts.regions)
        others = "|".join(c for c in clouds if c != cloud)
        branch: dict[str, Any] = {"required": sorted(facts.config_keys.values())}
        if others:
            branch["propertyNames"] = {"not": {"pattern": f"^({others}):"}}
        per_cloud.append(branch)
    pool = spec["$defs"]["NodePool"]["properties"]
    pool["accelerator"]["enum"] = sorted(accelerators)
    pool["instance_type"]["anyOf"][0]["enum"] = sorted(instance_types)
    required = [f"meshstack:{name}" for name in spec.get("required", []) if name not in DERIVED]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "meshstack stack file (Pulumi.<stack>.yaml)",
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "description": "meshstack:* keys are the stack spec; one cloud's provider keys say where it runs.",
                "properties": config,
                "required": required,
                # Other providers' and programs' keys belong to them; a meshstack:* key must be one of the spec's.
                "additionalProperties": True,
                "propertyNames": {"anyOf": [{"enum": sorted(config)}, {"not": {"pattern": "^meshstack:"}}]},
                "oneOf": per_cloud,
            },
            **{key: {} for key in PULUMI_KEYS},
        },
        "required": ["config"],
        "additionalProperties": False,
        "$defs": spec["$defs"],
    }
