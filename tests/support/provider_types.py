"""The type tokens the provider SDKs register: the oracle the pack's type patterns and the plan's resource
types are checked against."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path


def provider_types(package: str) -> set[str]:
    """The type tokens a provider SDK registers, read from its own module table (the SDK is the oracle)."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None
    source = Path(spec.origin).read_text()
    table = source.split('resource_modules="""', 1)[1].split('"""', 1)[0]
    return {token for module in json.loads(table) for token in module["classes"]}
