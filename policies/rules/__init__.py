"""The rules, grouped by what they protect. Each module exports RULES."""

from policies.rule import Rule
from policies.rules import aws_security, cost, kubernetes

ALL_RULES: list[Rule] = [*aws_security.RULES, *kubernetes.RULES, *cost.RULES]

__all__ = ["ALL_RULES"]
