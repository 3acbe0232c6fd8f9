"""The stack's budget and environment, declared as a resource so policies can read them."""

from __future__ import annotations

import pulumi

from meshstack.core.spec import Budget as BudgetSpec

BUDGET_TYPE = "meshstack:governance:Budget"


class Budget(pulumi.ComponentResource):
    """Holds no cloud resource. Its inputs carry the spec's budget to the policy pack, which sees
    only resources: `pulumi preview --policy-pack` and `meshstack preview` then enforce the
    limits the stack file states, with no second copy in the pack's config.
    """

    def __init__(
        self, name: str, cloud: str, environment: str, budget: BudgetSpec, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        props = {"cloud": cloud, "environment": environment, **budget.model_dump(exclude_none=True)}
        super().__init__(BUDGET_TYPE, name, props, opts)
        self.register_outputs(props)
