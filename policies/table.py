"""The README's rule table, written from the rules themselves: id, name, level, severity, what the rule checks
and every type that carries its concept, so coverage is visible where a reviewer looks an id up.
tests/policies/test_readme_rules.py holds the README to this text."""

from __future__ import annotations

from collections.abc import Sequence

from meshstack.policies.pod_templates import OBJECT_TYPES, WORKLOAD_TYPES
from meshstack.policies.rule import Rule

# Type lists too long for a table cell, named once below the table.
NAMED_SETS = {
    WORKLOAD_TYPES: "pod-template kinds, with their `*Patch` kinds",
    OBJECT_TYPES: "pod-template kinds",
}


def _types(rule: Rule) -> str:
    if not rule.resource_types:
        return "every resource"
    for types, name in NAMED_SETS.items():
        if rule.resource_types == types:
            return name
        if set(types) <= set(rule.resource_types):
            rest = [t for t in rule.resource_types if t not in types]
            return f"{name}, " + ", ".join(f"`{t}`" for t in rest)
    return ", ".join(f"`{t}`" for t in rule.resource_types)


def rule_table(rules: Sequence[Rule]) -> str:
    rows = [
        "| id | rule | level | severity | checks | types |",
        "| --- | --- | --- | --- | --- | --- |",
        *(f"| `{r.id}` | `{r.name}` | {r.enforcement} | {r.severity} | {r.description} | {_types(r)} |" for r in rules),
        "",
        "Pod-template kinds: "
        + ", ".join(f"`{t}`" for t in OBJECT_TYPES)
        + "; their `*Patch` kinds: "
        + ", ".join(f"`{t}`" for t in WORKLOAD_TYPES if t not in OBJECT_TYPES)
        + ".",
    ]
    return "\n".join(rows) + "\n"
