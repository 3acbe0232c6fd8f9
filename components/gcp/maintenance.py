"""When GKE may upgrade a cluster meshstack creates: a recurring window, and exclusions that keep upgrades
off running jobs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MaintenanceExclusionArgs:
    """No minor or node upgrades from `start` to `end` (RFC 3339): a long run's slices stay as they are."""

    name: str
    """The exclusion's name, unique in the cluster."""
    start: str
    """When it begins, RFC 3339."""
    end: str
    """When it ends, RFC 3339."""


@dataclass(frozen=True)
class MaintenanceArgs:
    """A recurring window (its first occurrence, RFC 3339 in UTC, and an RRULE) and the exclusions."""

    start_time: str = "2025-01-11T02:00:00Z"
    """The window's first occurrence begins, RFC 3339 in UTC (a past date on the first listed day)."""
    end_time: str = "2025-01-11T08:00:00Z"
    """The window's first occurrence ends, RFC 3339 in UTC: its length is every occurrence's."""
    recurrence: str = "FREQ=WEEKLY;BYDAY=SA,SU"
    """An RFC 5545 RRULE: the days the window recurs on."""
    exclusions: Sequence[MaintenanceExclusionArgs] = ()
    """Stretches with no minor or node upgrades (a long run's slices stay as they are)."""


def maintenance_policy(maintenance: MaintenanceArgs) -> dict[str, Any]:
    """Upgrades, which recreate a TPU slice or GPU node under its job, run only inside the window, and
    never inside an exclusion."""
    return {
        "recurring_window": {
            "start_time": maintenance.start_time,
            "end_time": maintenance.end_time,
            "recurrence": maintenance.recurrence,
        },
        "maintenance_exclusions": [
            {
                "exclusion_name": e.name,
                "start_time": e.start,
                "end_time": e.end,
                "exclusion_options": {"scope": "NO_MINOR_OR_NODE_UPGRADES"},
            }
            for e in maintenance.exclusions
        ],
    }
