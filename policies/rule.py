"""A rule: a pure check plus what a user needs to act on it (severity, enforcement, remediation)."""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from meshstack.core.resources import ResourceView
from meshstack.policies.values import Unknown

Severity = Literal["low", "medium", "high", "critical"]
Enforcement = Literal["advisory", "mandatory", "disabled"]


@dataclass(frozen=True)
class Finding:
    """A stack rule's violation, at the resource that caused it (or the stack, with no urn)."""

    message: str
    urn: str = ""


@dataclass(frozen=True)
class Undecided:
    """What a rule could not judge because a value it needs is unknown until the resource exists
    (`pulumi preview` of a new stack): reported apart from the violations, never as one."""

    message: str
    urn: str = ""


ResourceCheck = Callable[[ResourceView, Mapping[str, Any]], Iterable["str | Undecided"]]
StackCheck = Callable[[Sequence[ResourceView], Mapping[str, Any]], Iterable["Finding | Undecided"]]


# The config schema of a rule parameter that lists strings (registries, paths, capabilities, names).
STRING_LIST = {"type": "array", "items": {"type": "string"}}

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


Check = TypeVar("Check", ResourceCheck, StackCheck)


class RuleSet(list[Rule]):
    """A module's rules, each declared on its check with `@RULES.rule(...)`: what a rule says about itself
    (its id, severity, remediation) sits on the code that enforces it."""

    def rule(
        self,
        *,
        id: str,
        name: str,
        description: str,
        severity: Severity,
        enforcement: Enforcement,
        remediation: str,
        kind: Literal["resource", "stack"] = "resource",
        resource_types: tuple[str, ...] = (),
        config: dict[str, dict[str, Any]] | None = None,
    ) -> Callable[[Check], Check]:
        def register(check: Check) -> Check:
            self.append(
                Rule(
                    id=id,
                    name=name,
                    description=description,
                    severity=severity,
                    enforcement=enforcement,
                    remediation=remediation,
                    check=check,
                    kind=kind,
                    resource_types=resource_types,
                    config=config or {},
                )
            )
            return check

        return register


# Helpers for reading resource properties. They arrive as plain data of any shape a program may
# send (a list where a map is expected, a string where a number is, null anywhere), with Unknown in
# place of what the engine does not know yet: every reader here answers something for every shape.


def as_list(value: Any) -> list[Any]:
    """A list for any value: none for null, the value itself for a scalar or a map given where a list
    is expected (the engine accepts both for a block of one)."""
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def as_map(value: Any) -> Mapping[str, Any]:
    """A map, or an empty one for anything else; a one-element list of a map (a block of one written as
    a list, as Terraform writes MaxItems=1 blocks) is that map."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, list | tuple) and len(value) == 1 and isinstance(value[0], Mapping):
        return value[0]
    return {}


def get(mapping: Any, *path: str, default: Any = None) -> Any:
    """The value at path, or default where the path does not exist; an Unknown on the way is the answer
    (what lies below it is unknown too)."""
    current = mapping
    for key in path:
        if isinstance(current, Unknown):
            return current
        current = as_map(current) if not isinstance(current, Mapping) else current
        if key not in current:
            return default
        current = current[key]
    return current


def number(value: Any) -> float | None:
    """A finite number for a number or a numeric string; None for anything else (bools included)."""
    if isinstance(value, bool) or value is None or isinstance(value, Unknown):
        return None
    try:
        result = float(value) if isinstance(value, int | float | str) else None
    except (ValueError, OverflowError):
        return None
    return result if result is not None and math.isfinite(result) else None


def integer(value: Any) -> int | None:
    """An integral number for an int, an integral float or a numeric string; None otherwise."""
    result = number(value)
    return int(result) if result is not None and result.is_integer() else None


def text(value: Any) -> str:
    """A string for a message or a comparison; null is the empty string."""
    return "" if value is None else str(value)


def is_true(value: Any) -> bool:
    """True as a bool or as the string the providers also accept ("true")."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def is_false(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.lower() == "false")


def string_map(value: Any) -> dict[str, Any]:
    """Tags or labels as a map, whichever way they were given: a map, or a list of {key, value} entries
    (an Auto Scaling group's tags, a launch template's tag specifications)."""
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    out: dict[str, Any] = {}
    for entry in as_list(value):
        key = get(entry, "key", default=get(entry, "Key"))
        if isinstance(key, str):
            out[key] = get(entry, "value", default=get(entry, "Value"))
    return out


def policy_document(document: Any) -> Mapping[str, Any] | Unknown | None:
    """An IAM policy document given as JSON text or as data; None where it is neither."""
    if isinstance(document, Unknown):
        return document
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except (json.JSONDecodeError, RecursionError):
            return None
    return document if isinstance(document, Mapping) else None


def policy_statements(document: Any) -> list[Mapping[str, Any]]:
    """The statements of an IAM policy document given as JSON text or as data (one statement may be
    given bare, not in a list)."""
    parsed = policy_document(document)
    if not isinstance(parsed, Mapping):
        return []
    return [s for s in as_list(get(parsed, "Statement")) if isinstance(s, Mapping)]


OPEN_CIDRS = ("0.0.0.0/0", "::/0")


def is_open(cidr: Any) -> bool:
    """The whole internet, however it is written (0.0.0.0/0, ::/0, 0.0.0.0/1 is not)."""
    if not isinstance(cidr, str):
        return False
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False).prefixlen == 0
    except ValueError:
        return False
