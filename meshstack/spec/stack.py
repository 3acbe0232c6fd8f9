"""The whole stack: one environment's tags, network, clusters, storage and budget."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from meshstack.spec.base import SpecModel, field_error
from meshstack.spec.cluster import ClusterSpec
from meshstack.spec.network import NetworkSpec
from meshstack.spec.storage import StorageSpec

REQUIRED_TAGS = ("team", "project", "cost-center")
TAG_KEY = re.compile(r"^[\w .:/=+@-]{1,128}$")


class Budget(SpecModel):
    """Limits the policy pack enforces against the stack's estimated cost."""

    max_hourly_usd: float | None = Field(default=None, gt=0)
    max_monthly_usd: float | None = Field(default=None, gt=0)
    max_accelerators: int | None = Field(default=None, ge=0)


class StackSpec(SpecModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$", description="The Pulumi stack name.")
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$", description="From aws:region.")
    environment: Literal["dev", "staging", "prod"] = Field(
        description="Decides defaults and which cost rules apply (dev stacks must use spot or scale to zero)."
    )
    tags: dict[str, str] = Field(
        description="Cost-allocation tags for every taggable resource; team, project, cost-center required."
    )
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    clusters: list[ClusterSpec] = Field(min_length=1)
    storage: StorageSpec = Field(default_factory=StorageSpec)
    budget: Budget = Field(default_factory=Budget)

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        for key in REQUIRED_TAGS:
            if not tags.get(key, "").strip():
                raise field_error(key, f"the '{key}' tag is required (required tags: {', '.join(REQUIRED_TAGS)})")
        for key, value in tags.items():
            if key.lower().startswith("aws:") or not TAG_KEY.match(key):
                raise field_error(key, f"'{key}' is not a valid AWS tag key (1-128 characters, not starting with aws:)")
            if len(value) > 256:
                raise field_error(key, "tag values are at most 256 characters")
        return tags

    @model_validator(mode="after")
    def _unique_clusters(self) -> StackSpec:
        seen: set[str] = set()
        for i, cluster in enumerate(self.clusters):
            if cluster.name in seen:
                raise field_error(f"clusters[{i}].name", f"cluster name '{cluster.name}' is used twice")
            seen.add(cluster.name)
        return self

    def resource_tags(self) -> dict[str, str]:
        """The tags every taggable resource carries: the user's, plus where it came from."""
        return {**self.tags, "meshstack:stack": self.name, "managed-by": "meshstack"}
