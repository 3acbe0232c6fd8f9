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
    environment: str
    region: str | None = None
    max_hourly_usd: float | None = None
    max_monthly_usd: float | None = None
    max_accelerators: int | None = None
    max_monthly_kwh: float | None = None


class StackGovernance(pulumi.ComponentResource):
    """Holds no cloud resource. Its inputs carry the spec's budget to the policy pack, which sees
    only resources: `pulumi preview --policy-pack` and `meshstack preview` then enforce the
    limits the stack file states, with no second copy in the pack's config.
    """

    def __init__(self, name: str, args: StackGovernanceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props = {k: v for k, v in vars(args).items() if v is not None}
        super().__init__(GOVERNANCE, name, props, opts)
        self.register_outputs(props)
