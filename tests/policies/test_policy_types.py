"""Every type a rule looks at is a type that really exists: one the providers register or meshstack's
components produce (in the shipped stacks, or in a Karpenter stack, whose NodePools no shipped stack has).
A pattern that matches nothing is a rule that silently never runs."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable

import pytest

from meshstack.policies import pod_templates
from meshstack.policies.rule import Rule
from meshstack.policies.rules import ALL_RULES, aws_compute, aws_exposure, aws_storage, cost, gcp_security
from meshstack.preview.plan import Preview
from tests.conftest import SHIPPED_STACKS
from tests.support.previews import karpenter_preview
from tests.support.provider_types import provider_types

TOKEN = re.compile(r"^(aws|gcp|kubernetes|meshstack):[\w./-]+:\w+$")


@pytest.fixture(scope="module")
def real_types(preview: Callable[[str], Preview], tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    produced = {r.type for stack in SHIPPED_STACKS for r in preview(stack).resources}
    produced |= {r.type for r in karpenter_preview(tmp_path_factory.mktemp("karpenter")).resources}
    return produced | provider_types("pulumi_aws") | provider_types("pulumi_gcp") | provider_types("pulumi_kubernetes")


def test_the_provider_tables_hold_the_types_meshstack_declares(real_types: set[str]) -> None:
    for token in ("aws:eks/nodeGroup:NodeGroup", "gcp:container/nodePool:NodePool", "kubernetes:apps/v1:Deployment"):
        assert token in real_types


@pytest.mark.parametrize("rule", [r for r in ALL_RULES if r.resource_types], ids=lambda r: r.id)
def test_every_pattern_of_every_rule_matches_a_real_type(rule: Rule, real_types: set[str]) -> None:
    for pattern in rule.resource_types:
        assert any(fnmatch.fnmatchcase(t, pattern) for t in real_types), f"{rule.id}: {pattern} matches no type"


def type_constants() -> list[str]:
    """Type tokens the rule modules name as constants (stack rules pick resources by these)."""
    found = []
    for module in (aws_storage, aws_compute, aws_exposure, gcp_security, pod_templates, cost):
        for value in vars(module).values():
            values = value if isinstance(value, tuple | list | frozenset | set | dict) else [value]
            found += [v for v in values if isinstance(v, str) and TOKEN.match(v) and "*" not in v]
    return sorted(set(found))


@pytest.mark.parametrize("token", type_constants())
def test_every_type_a_rule_module_names_exists(token: str, real_types: set[str]) -> None:
    assert token in real_types


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_pod_rules_reach_every_workload_the_stacks_render(stack: str, preview: Callable[[str], Preview]) -> None:
    workloads = [r for r in preview(stack).resources if r.type.rsplit(":", 1)[-1] in ("Deployment", "JobSet", "Job")]
    assert workloads
    privileged = next(r for r in ALL_RULES if r.name == "pod-not-privileged")
    assert all(privileged.applies_to(r.type) for r in workloads)
