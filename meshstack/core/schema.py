"""The JSON Schema of a stack file as it is written: Pulumi.<stack>.yaml with its `config:` mapping.

Derived from the spec, so the schema cannot drift from what `validate` accepts: each spec field
becomes its `meshstack:<field>` key, and each cloud's catalog adds its provider keys (aws:region,
gcp:project...) and its accelerator and instance type names, so an editor completes them.
"""

from __future__ import annotations

from typing import Any

from meshstack.core.catalog import known_clouds, load_catalog
from meshstack.core.spec import StackSpec

SCHEMA_ID = "https://meshstack.dev/schemas/stack-file.json"
# Filled from elsewhere than a meshstack:* key: the stack's name, its cloud, and the provider keys.
DERIVED = ("name", "cloud", "region", "project", "zone")
# Pulumi's own top-level keys of a stack file (secrets and ESC environments).
PULUMI_KEYS = ("secretsprovider", "encryptedkey", "encryptionsalt", "environment")


def stack_schema() -> dict[str, Any]:
    spec = StackSpec.model_json_schema()
    fields: dict[str, Any] = spec["properties"]
    config: dict[str, Any] = {f"meshstack:{name}": schema for name, schema in fields.items() if name not in DERIVED}
    accelerators: set[str] = set()
    instance_types: set[str] = set()
    per_cloud = []
    for cloud in known_clouds():
        catalog = load_catalog(cloud=cloud)
        facts = catalog.facts
        accelerators |= set(catalog.accelerators)
        instance_types |= set(catalog.instance_types)
        for field, key in facts.config_keys.items():
            config[key] = {"type": "string", "description": fields[field].get("description", "")}
        config[facts.config_keys["region"]]["pattern"] = facts.region_pattern
        per_cloud.append({"required": sorted(facts.config_keys.values())})
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
