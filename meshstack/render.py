"""Human-readable forms of a preview."""

from __future__ import annotations

from collections import defaultdict

from meshstack.engine import Resource
from meshstack.preview import Preview


def tree(preview: Preview) -> str:
    """The resource tree as `pulumi preview` shows it: components, then what they hold."""
    children: dict[str, list[Resource]] = defaultdict(list)
    urns = {r.urn for r in preview.resources}
    roots: list[Resource] = []
    for r in preview.resources:
        (children[r.parent] if r.parent in urns else roots).append(r)

    lines = [f"Stack {preview.stack} ({preview.spec.environment}, {preview.spec.region})"]

    def walk(nodes: list[Resource], prefix: str) -> None:
        ordered = sorted(nodes, key=lambda r: (r.custom, r.type, r.name))
        for i, node in enumerate(ordered):
            last = i == len(ordered) - 1
            lines.append(f"{prefix}{'└─ ' if last else '├─ '}{node.name}  [{node.type}]")
            walk(children[node.urn], prefix + ("   " if last else "│  "))

    walk(roots, "")
    components = len(preview.resources) - len(preview.custom_resources)
    lines.append(f"{len(preview.custom_resources)} resources to create in {components} components")
    return "\n".join(lines)
