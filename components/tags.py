"""Cost-allocation tags, shared by every component so that no taggable resource goes without."""

from __future__ import annotations

from collections.abc import Mapping


def named(tags: Mapping[str, str], name: str) -> dict[str, str]:
    """The stack's tags plus a Name, which the EC2 console shows in place of an id."""
    return {**tags, "Name": name}
