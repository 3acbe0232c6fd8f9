"""Kueue queues over a cluster's pools."""

from __future__ import annotations

from pydantic import Field, field_validator

from meshstack.core.spec.base import (
    DNS_LABEL,
    SpecModel,
    field_error,
)

DEFAULT_QUEUE = "default"


class QueueSpec(SpecModel):
    """A Kueue ClusterQueue: how much of the cluster's pools the jobs sent to it may hold at once."""

    name: str = Field(pattern=DNS_LABEL, description="A DNS label, unique in the cluster; training workloads name it.")
    nodes: dict[str, int] | None = Field(
        default=None,
        description="Nominal quota in nodes per pool (by pool name; hosts for TPU pools, all slices together). "
        "Omitted: every pool whole. A pool left out gets no quota.",
    )
    cohort: str | None = Field(
        default=None, pattern=DNS_LABEL, description="Queues in one cohort lend each other unused quota."
    )

    @field_validator("nodes")
    @classmethod
    def _non_negative(cls, nodes: dict[str, int] | None) -> dict[str, int] | None:
        for pool, count in (nodes or {}).items():
            if count < 0:
                raise field_error(pool, f"a quota is a number of nodes, not {count}")
        return nodes


# Add-ons an existing cluster's owners may already run, which meshstack then leaves to them: what
# meshstack's own objects only need present (a device plugin, metrics, a CSI driver). JobSet, Kueue, KEDA
# and the Prometheus Operator stay meshstack's: its queues, scalers and rules are written for its pinned
# charts and values.
