"""A rule: a pure check plus what a user needs to act on it (severity, enforcement, remediation)."""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from meshstack.core.resources import ResourceView

Severity = Literal["low", "medium", "high", "critical"]
Enforcement = Literal["advisory", "mandatory", "disabled"]


@dataclass(frozen=True)
class Finding:
    """A stack rule's violation, at the resource that caused it (or the stack, with no urn)."""

    message: str
    urn: str = ""


ResourceCheck = Callable[[ResourceView, Mapping[str, Any]], Iterable[str]]
StackCheck = Callable[[Sequence[ResourceView], Mapping[str, Any]], Iterable[Finding]]


RULE_ID = re.compile(r"^MS-(AWS|GCP|K8S|COST)-\d{3}$")


def matches_type(resource_type: str, patterns: Iterable[str]) -> bool:
    """Type patterns are shell globs over Pulumi type tokens (`kubernetes:apps/v1:Deployment`,
    `kubernetes:jobset.x-k8s.io/*:JobSet`), matched case-sensitively as the engine spells them."""
    return any(fnmatch.fnmatchcase(resource_type, p) for p in patterns)


@dataclass(frozen=True)
class Rule:
    """`id` is stable across releases, so a pull-request comment can be looked up in the README's rule table;
    `name` is the pulumi-policy policy name that policy configs use."""

    id: str
    name: str
    description: str
    severity: Severity
    enforcement: Enforcement
    remediation: str
    check: ResourceCheck | StackCheck
    kind: Literal["resource", "stack"] = "resource"
    resource_types: tuple[str, ...] = ()
    config: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not RULE_ID.match(self.id):
            raise ValueError(f"rule {self.name}: id '{self.id}' is not of the form MS-<AWS|GCP|K8S|COST>-NNN")

    def applies_to(self, resource_type: str) -> bool:
        return not self.resource_types or matches_type(resource_type, self.resource_types)

    def settings(self, config: Mapping[str, Any] | None) -> dict[str, Any]:
        """The schema's defaults overlaid with the stack's config for this rule."""
        defaults = {k: v["default"] for k, v in self.config.items() if "default" in v}
        return {**defaults, **(config or {})}


# Helpers for reading resource properties, which arrive as plain data or as the
# policy SDK's read-only proxies (Mapping and Sequence, never dict and list).


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def get(mapping: Any, *path: str, default: Any = None) -> Any:
    current = mapping
    for key in path:
        if not isinstance(current, Mapping) or key not in current:
            return default
        current = current[key]
    return current


def policy_statements(document: Any) -> list[Mapping[str, Any]]:
    """The statements of an IAM policy document given as JSON text or as data."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError:
            return []
    return [s for s in as_list(get(document, "Statement")) if isinstance(s, Mapping)]


OPEN_CIDRS = ("0.0.0.0/0", "::/0")


def is_open(cidr: Any) -> bool:
    """The whole internet, however it is written (0.0.0.0/0, ::/0, 0.0.0.0/1 is not)."""
    try:
        return ipaddress.ip_network(str(cidr), strict=False).prefixlen == 0
    except ValueError:
        return False
