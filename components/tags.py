"""Cost-allocation tags, shared by every component so that no taggable resource goes without."""

from __future__ import annotations

from collections.abc import Mapping


def named(tags: Mapping[str, str], name: str) -> dict[str, str]:
    """The stack's tags plus a Name, which the EC2 console shows in place of an id."""
    return {**tags, "Name": name}


EXPECTED_SIZE_TAG = "meshstack:expected-gib"
EXPECTED_SIZE_LABEL = "meshstack-expected-gib"  # GCP labels allow no ':'


def sized(tags: Mapping[str, str], gib: float) -> dict[str, str]:
    """Record the spec's expected size on a store whose size AWS does not fix, for the cost estimate.

    The cost report and the budget rules read only resource properties, so the
    expected size travels with the bucket or file system as a tag.
    """
    return {**tags, EXPECTED_SIZE_TAG: f"{gib:g}"} if gib else dict(tags)
