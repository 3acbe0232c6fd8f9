"""What waits for what in a recorded preview, as the Pulumi engine and the Python SDK order a real `up`.

A resource is created only after:
- each resource in its recorded `dependencies` (explicit `depends_on` and the resources its inputs'
  outputs come from). Depending on a component means depending on all of its descendants
  (pulumi/pulumi#7732: the SDK expands a local component into its children);
- its provider: the engine configures a resource's provider, and so creates the provider's own
  dependencies, before it sends the resource to it;
- its parent's registration: the SDK sends a resource only once its parent's URN has resolved
  (`prepare_resource` awaits `opts.parent.urn`), and a component's URN resolves only after its own
  `depends_on` have finished. A child therefore waits for its parent's dependencies (not for its
  siblings).
"""

from __future__ import annotations

from collections.abc import Iterable

from meshstack.preview.recorder import Resource


def provider_urn(reference: str) -> str:
    """A provider reference is `<urn>::<id>`."""
    return reference.rsplit("::", 1)[0] if reference else ""


class Graph:
    def __init__(self, resources: Iterable[Resource]) -> None:
        self.by_urn = {r.urn: r for r in resources}
        self.children: dict[str, list[str]] = {}
        for r in self.by_urn.values():
            self.children.setdefault(r.parent, []).append(r.urn)
        self._closures: dict[str, frozenset[str]] = {}

    def descendants(self, urn: str) -> set[str]:
        out: set[str] = set()
        pending = list(self.children.get(urn, ()))
        while pending:
            child = pending.pop()
            if child not in out:
                out.add(child)
                pending.extend(self.children.get(child, ()))
        return out

    def _direct(self, urn: str) -> set[str]:
        r = self.by_urn.get(urn)
        if r is None:
            return set()
        out: set[str] = set()
        for dep in r.dependencies:
            out.add(dep)
            dependency = self.by_urn.get(dep)
            if dependency is not None and not dependency.custom:
                out |= self.descendants(dep)
        if r.custom and r.provider:
            out.add(provider_urn(r.provider))
        if r.parent in self.by_urn:
            out.add(r.parent)  # the parent's registration: its own dependencies, not its children
        return out

    def waits_for(self, urn: str) -> frozenset[str]:
        """Every resource that is created before `urn` (transitively)."""
        if urn in self._closures:
            return self._closures[urn]
        seen: set[str] = set()
        pending = list(self._direct(urn))
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            pending.extend(self._direct(current))
        self._closures[urn] = frozenset(seen)
        return self._closures[urn]
