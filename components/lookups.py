"""Reading nested values of a looked-up (data source) result or a resource output."""

from __future__ import annotations

from typing import Any


def nested(value: Any, *path: str | int) -> Any:
    """`value[path...]` where each step is a list index or a field: the engine hands typed objects, the
    SDK's mock runtime plain dicts with the same snake_case keys. A missing field raises, naming it."""
    for step in path:
        value = value[step] if isinstance(step, int) or isinstance(value, dict) else getattr(value, step)
        if value is None:
            raise ValueError(f"the look-up reports no {'.'.join(map(str, path))}")
    return value
