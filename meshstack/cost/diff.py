"""What changed in cost between two stacks' estimates, resource by resource (`meshstack cost --diff`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meshstack.core.pricing import HOURS_PER_MONTH
from meshstack.cost.report import CostItem, CostReport


@dataclass(frozen=True)
class CostChange:
    key: str
    description: str
    before_hourly_usd: float
    after_hourly_usd: float
    before_running_hourly_usd: float = 0.0
    after_running_hourly_usd: float = 0.0

    @property
    def delta_hourly_usd(self) -> float:
        return self.after_hourly_usd - self.before_hourly_usd

    @property
    def delta_running_hourly_usd(self) -> float:
        return self.after_running_hourly_usd - self.before_running_hourly_usd

    def to_json(self) -> dict[str, Any]:
        return {
            "resource": self.key,
            "description": self.description,
            "before_hourly_usd": round(self.before_hourly_usd, 4),
            "after_hourly_usd": round(self.after_hourly_usd, 4),
            "delta_hourly_usd": round(self.delta_hourly_usd, 4),
            "delta_monthly_usd": round(self.delta_hourly_usd * HOURS_PER_MONTH, 2),
            "before_running_hourly_usd": round(self.before_running_hourly_usd, 4),
            "after_running_hourly_usd": round(self.after_running_hourly_usd, 4),
            "delta_running_hourly_usd": round(self.delta_running_hourly_usd, 4),
        }


def _key(item: CostItem, stack: str) -> str:
    """A resource's identity across two stacks: its type and its name without the stack's prefix."""
    name = item.name.removeprefix(f"{stack}-") if stack else item.name
    return f"{item.type.rsplit(':', 1)[-1]} {name}"


def diff(before: CostReport, before_stack: str, after: CostReport, after_stack: str) -> list[CostChange]:
    """What changed, resource by resource, most expensive change first; unchanged items are left out."""
    old = {_key(i, before_stack): i for i in before.items}
    new = {_key(i, after_stack): i for i in after.items}
    changes = []
    for key in old.keys() | new.keys():
        a, b = old.get(key), new.get(key)
        before_usd, after_usd = (a.hourly_usd if a else 0.0), (b.hourly_usd if b else 0.0)
        before_run, after_run = (a.running_hourly_usd if a else 0.0), (b.running_hourly_usd if b else 0.0)
        described = b or a
        description = described.description if described is not None else ""
        moved = abs(after_usd - before_usd) > 1e-9 or abs(after_run - before_run) > 1e-9
        if a is None or b is None or moved or a.description != b.description:
            changes.append(CostChange(key, description, before_usd, after_usd, before_run, after_run))
    return sorted(changes, key=lambda c: (-abs(c.delta_running_hourly_usd), -abs(c.delta_hourly_usd), c.key))
