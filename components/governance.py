"""The stack's budget and environment, declared as a resource so policies can read them."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from meshstack.core.types import GOVERNANCE


@dataclass(frozen=True, kw_only=True)
class StackGovernanceArgs:
    """What the cost rules enforce: limits in USD, accelerators and energy, which environment this is,
    and the region whose grid the energy estimate turns into CO2."""

    cloud: str
    """The stack's cloud, whose catalog prices the plan."""
    environment: str
    """dev, staging or prod: which cost rules apply."""
    region: str | None = None
    """The region whose grid turns the energy estimate into CO2; the catalog's base region when not given."""
    max_hourly_usd: float | None = None
    """The budget's cap on the cost per hour while the workloads run."""
    max_monthly_usd: float | None = None
    """The budget's cap on the cost per month."""
    max_accelerators: int | None = None
    """The budget's cap on accelerators the pools can grow to."""
    max_monthly_kwh: float | None = None
    """The budget's cap on energy per month."""


class StackGovernance(pulumi.ComponentResource):
    """Holds no cloud resource. Its inputs carry the spec's budget to the policy pack, which sees
    only resources: `pulumi preview --policy-pack` and `meshstack preview` then enforce the
    limits the stack file states, with no second copy in the pack's config.
    """

    def __init__(self, name: str, args: StackGovernanceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props = {k: v for k, v in vars(args).items() if v is not None}
        super().__init__(GOVERNANCE, name, props, opts)
        self.register_outputs(props)
