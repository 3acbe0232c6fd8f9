"""The rules, grouped by what they protect. Each module exports RULES."""

from meshstack.policies.rule import Rule
from meshstack.policies.rules import (
    aws_compute,
    aws_exposure,
    aws_iam,
    aws_storage,
    aws_supply,
    cost,
    gcp_access,
    gcp_security,
    kubernetes_images,
    kubernetes_network,
    kubernetes_pods,
)

MODULES = (
    aws_storage,
    aws_compute,
    aws_iam,
    aws_exposure,
    aws_supply,
    gcp_security,
    gcp_access,
    kubernetes_pods,
    kubernetes_images,
    kubernetes_network,
    cost,
)
ALL_RULES: list[Rule] = sorted((rule for module in MODULES for rule in module.RULES), key=lambda r: r.id)

__all__ = ["ALL_RULES", "MODULES"]
