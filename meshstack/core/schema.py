"""The JSON Schema of a stack spec, with the catalog's names filled in so editors can complete them."""

from __future__ import annotations

from typing import Any

from meshstack.core.catalog import Catalog, load_catalog
from meshstack.core.spec import StackSpec


def stack_schema(catalog: Catalog | None = None) -> dict[str, Any]:
    catalog = catalog or load_catalog()
    schema = StackSpec.model_json_schema()
    pool = schema["$defs"]["NodePool"]["properties"]
    pool["accelerator"]["enum"] = sorted(catalog.accelerators)
    pool["instance_type"]["anyOf"][0]["enum"] = sorted(catalog.instance_types)
    return schema
