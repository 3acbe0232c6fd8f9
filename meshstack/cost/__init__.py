"""Prices what a stack declares, from the catalog, resource by resource.

The estimate reads only resource properties, so the same code prices a recorded
preview and the resources the policy engine hands a stack policy: the cost the
pull-request comment shows is the cost the budget rules enforce.
"""

from meshstack.core.pricing import HOURS_PER_MONTH
from meshstack.cost.diff import CostChange, diff
from meshstack.cost.pricer import estimate, handed_over, plan_estimate, pool_shape, pool_types, pricing_module
from meshstack.cost.report import CostItem, CostReport, Energy, RunCost, monthly_kwh

__all__ = [
    "HOURS_PER_MONTH",
    "CostChange",
    "CostItem",
    "CostReport",
    "Energy",
    "RunCost",
    "diff",
    "estimate",
    "handed_over",
    "monthly_kwh",
    "plan_estimate",
    "pool_shape",
    "pool_types",
    "pricing_module",
]
