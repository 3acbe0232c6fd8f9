"""Every Kubernetes object a preview declares, as the manifests a cluster would receive.

One YAML file per object, in one folder per cluster (its Kubernetes provider), so
`kubectl diff -f DIR/<cluster>/`, kubeconform or any scanner reads what `pulumi up`
would send. Helm releases are not expanded: `helm template` renders those charts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from meshstack.preview.recorder import Resource

SKIPPED_KINDS = ("Release",)  # kubernetes:helm.sh/v3:Release is a chart, not an object


def api_version(resource_type: str) -> tuple[str, str] | None:
    """`kubernetes:apps/v1:Deployment` -> ('apps/v1', 'Deployment'); core/v1 is plain v1."""
    parts = resource_type.split(":")
    if len(parts) != 3 or parts[0] != "kubernetes" or parts[2] in SKIPPED_KINDS or parts[2].endswith(("Patch", "List")):
        return None
    group_version = parts[1].removeprefix("core/")
    return group_version, parts[2]


def integral(value: Any) -> Any:
    """Pulumi's wire format carries every number as a double; the API server's int32 fields refuse 1.0."""
    if isinstance(value, dict):
        return {k: integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def manifest(resource: Resource) -> dict[str, Any] | None:
    """The object as written to the API server: the declared inputs, with the name Pulumi gave it."""
    kind = api_version(resource.type)
    if kind is None or not resource.custom:
        return None
    body = {k: v for k, v in resource.inputs.items() if k not in ("apiVersion", "kind", "metadata")}
    metadata = dict(resource.inputs.get("metadata") or {})
    named = (resource.outputs.get("metadata") or {}).get("name")
    if "name" not in metadata and named:
        metadata["name"] = named
    return integral({"apiVersion": kind[0], "kind": kind[1], "metadata": metadata, **body})


def _safe(name: str) -> str:
    """A name usable as one path component."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)


def _cluster_folder(provider: str) -> str:
    """A provider reference is `<urn>::<id>`; the URN ends in the provider's name."""
    urn = provider.rsplit("::", 1)[0] if provider.count("::") > 3 else provider
    return _safe(urn.rsplit("::", 1)[-1] or "default")


def kubernetes_objects(resources: Sequence[Resource]) -> list[tuple[str, dict[str, Any]]]:
    """(cluster folder, object) for every Kubernetes object, in the order the preview lists them."""
    out = []
    for resource in resources:
        body = manifest(resource)
        if body is not None:
            out.append((_cluster_folder(resource.provider), body))
    return out


def write_manifests(resources: Sequence[Resource], directory: Path) -> list[Path]:
    """Writes `<cluster>/<kind>-<namespace>-<name>.yaml` for every object; returns the files written."""
    written = []
    for folder, body in kubernetes_objects(resources):
        metadata = body["metadata"]
        stem = "-".join(str(p) for p in (body["kind"].lower(), metadata.get("namespace"), metadata.get("name")) if p)
        path = directory / folder / f"{_safe(stem)}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(body, sort_keys=False))
        written.append(path)
    return written
