"""The rules, grouped by what they protect. Each module exports RULES."""

from policies.rule import Rule
from policies.rules import aws_security, cost, gcp_security, kubernetes

ALL_RULES: list[Rule] = [*aws_security.RULES, *gcp_security.RULES, *kubernetes.RULES, *cost.RULES]

__all__ = ["ALL_RULES"]
