"""Resource properties as the rules read them: plain data, with every value the engine could not know yet
replaced by an `Unknown` that says where it sits.

During `pulumi preview` the engine sends an output it cannot know yet (an ARN, an id) as one of
pulumi-policy's sentinel strings, and the policy SDK wraps the properties in a proxy that raises
`UnknownValueError` the moment a rule reads one. The SDK turns that error into one advisory "can't run
policy during preview" for the whole rule, so a stack rule that reads one unknown ARN stops judging every
other resource too. Resolving the proxy first lets each rule decide value by value: what is known is
judged at the rule's level, and only what depends on an unknown is reported as undecided.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
)

SENTINELS = {
    UNKNOWN_BOOLEAN_VALUE: "boolean",
    UNKNOWN_NUMBER_VALUE: "number",
    UNKNOWN_STRING_VALUE: "string",
    UNKNOWN_ARRAY_VALUE: "array",
    UNKNOWN_ASSET_VALUE: "asset",
    UNKNOWN_ARCHIVE_VALUE: "archive",
    UNKNOWN_OBJECT_VALUE: "object",
}


@dataclass(frozen=True)
class Unknown:
    """A value the engine will only know once the resource (or one it depends on) exists."""

    kind: str
    path: str

    def __str__(self) -> str:
        return f"<unknown {self.kind} at .{self.path}>"


def _raw(value: Any) -> Any:
    """The proxy's own target (pulumi-policy answers the key `__target` with it), else the value itself."""
    if type(value).__name__ in ("_DictProxy", "_ListProxy"):
        return value["__target"]
    return value


def resolve(value: Any, path: str = "") -> Any:
    """Plain dicts and lists, sentinels replaced by Unknown; nothing read through the raising proxy."""
    value = _raw(value)
    if isinstance(value, str):
        kind = SENTINELS.get(value)
        return Unknown(kind, path) if kind else value
    if isinstance(value, Mapping):
        return {str(k): resolve(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [resolve(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def unknowns(value: Any) -> list[Unknown]:
    """Every Unknown inside a value, in order."""
    if isinstance(value, Unknown):
        return [value]
    if isinstance(value, Mapping):
        return [u for v in value.values() for u in unknowns(v)]
    if isinstance(value, list | tuple):
        return [u for v in value for u in unknowns(v)]
    return []
