"""Which rules a stack's policy config turned off or changed, said wherever the verdict is.

A verdict means nothing without the rules it was reached under: `{"all": "disabled"}` makes every stack
"pass". Each output of the preview (terminal, JSON, pull-request comment, report) shows what the config
changed with the file it came from, and a preview under which no rule ran says so instead of passing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshstack.policies.pack import RULES_BY_NAME

RANK = {"disabled": 0, "advisory": 1, "mandatory": 2}


@dataclass(frozen=True)
class LevelChange:
    """A rule whose level the stack's config sets apart from the pack's default."""

    rule_id: str
    policy: str
    default: str
    level: str

    @property
    def kind(self) -> str:
        if self.level == "disabled":
            return "disabled"
        return "downgraded" if RANK[self.level] < RANK[self.default] else "raised"

    def to_json(self) -> dict[str, str]:
        return {"id": self.rule_id, "policy": self.policy, "default": self.default, "level": self.level}


def effective_level(config: Mapping[str, Any], name: str) -> str:
    """The level the engine applies: the rule's own entry, else `all`, else the pack's default."""
    entry = config.get(name)
    level = (
        entry if isinstance(entry, str) else (entry or {}).get("enforcementLevel") if isinstance(entry, dict) else None
    )
    return str(level or config.get("all") or RULES_BY_NAME[name].enforcement)


def level_changes(config: Mapping[str, Any]) -> list[LevelChange]:
    changes = []
    for name, rule in sorted(RULES_BY_NAME.items(), key=lambda item: item[1].id):
        level = effective_level(config, name)
        if level != rule.enforcement:
            changes.append(LevelChange(rule.id, name, rule.enforcement, level))
    return changes


@dataclass(frozen=True)
class PolicySettings:
    """The config file a preview ran the pack under and what it changed."""

    source: str
    changes: tuple[LevelChange, ...]
    total: int

    def of_kind(self, kind: str) -> list[LevelChange]:
        return [c for c in self.changes if c.kind == kind]

    @property
    def nothing_ran(self) -> bool:
        return len(self.of_kind("disabled")) == self.total

    def summary(self) -> str:
        """`3 rules disabled, 2 downgraded to advisory by policies/config/dev.json`, or '' when none."""
        parts = []
        for kind, label in (("disabled", "disabled"), ("downgraded", "downgraded to advisory")):
            found = self.of_kind(kind)
            if found:
                parts.append(f"{len(found)} rule{'s' if len(found) != 1 else ''} {label}")
        return f"{', '.join(parts)} by {self.source}" if parts else ""

    def lines(self) -> list[str]:
        """One line per rule the config disabled or lowered."""
        return [
            f"{c.rule_id} {c.policy}: {c.level} (default {c.default})"
            for c in self.changes
            if c.kind in ("disabled", "downgraded")
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.source,
            "disabled": [c.rule_id for c in self.of_kind("disabled")],
            "downgraded": [c.rule_id for c in self.of_kind("downgraded")],
            "levels": [c.to_json() for c in self.changes],
            "summary": self.summary(),
        }


def policy_settings(config: Mapping[str, Any], source: str, rules: Sequence[str] | None = None) -> PolicySettings:
    return PolicySettings(source, tuple(level_changes(config)), len(rules or RULES_BY_NAME))
