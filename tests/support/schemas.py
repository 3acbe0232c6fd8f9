"""The published schemas custom resources are checked against, an oracle nobody here wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meshstack.core.stack_file import PROJECT_ROOT

SCHEMAS = PROJECT_ROOT.parent / "shared" / "k8s-schemas"
# Published schemas of kinds the shared set leaves out (their sources: its README).
OWN_SCHEMAS = Path(__file__).parents[1] / "fixtures" / "k8s-schemas"


def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    """kubeconform's layout: <group>/<kind>_<version>.json."""
    group, version = api_version.split("/")
    paths = [folder / group / f"{kind.lower()}_{version}.json" for folder in (SCHEMAS, OWN_SCHEMAS)]
    path = next((p for p in paths if p.is_file()), None)
    assert path is not None, f"no published schema for {api_version} {kind} at {' or '.join(map(str, paths))}"
    return json.loads(path.read_text())
