"""Composes the components a spec asks for. The one place that knows how a stack is put together."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields

import pulumi

from meshstack.components.governance import StackGovernance, StackGovernanceArgs
from meshstack.components.platform import Platform
from meshstack.core import clouds
from meshstack.core.catalog import Catalog, load_catalog
from meshstack.core.nodes import NodePoolArgs
from meshstack.core.runs import run_declarations
from meshstack.core.spec import StackSpec
from meshstack.core.types import RUNS, TRAINING_RUNS
from meshstack.program.placement import deploy_workloads
from meshstack.program.pools import stack_pools


def fields_of(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def cloud_platform(spec: StackSpec, pools: Mapping[tuple[str, str], NodePoolArgs]) -> Platform:
    """The registered cloud's platform declares its network, storage and clusters."""
    result: Platform = clouds.get(spec.cloud).load_platform()(spec, pools)
    return result


class TrainingRuns(pulumi.ComponentResource):
    """Holds no cloud resource. Its inputs tell the cost estimate (the preview's and the policy engine's
    alike) how long each training run keeps its extra nodes, so a month's running cost counts each run once
    instead of 730 hours of a job that finishes in two; and the budget's per-run cap beside them."""

    def __init__(self, name: str, props: Mapping[str, object]) -> None:
        super().__init__(TRAINING_RUNS, name, dict(props))
        self.register_outputs(dict(props))


def build(spec: StackSpec, catalog: Catalog | None = None) -> None:
    """Declare the stack's infrastructure and workloads, and export what operators need to reach them."""
    catalog = catalog or load_catalog(cloud=spec.cloud)
    limits = {k: v for k, v in spec.budget.model_dump().items() if k in fields_of(StackGovernanceArgs)}
    StackGovernance(
        f"{spec.name}-budget",
        StackGovernanceArgs(cloud=spec.cloud, region=spec.region, environment=spec.environment, **limits),
    )
    runs = run_declarations(spec, catalog)
    if runs:
        TrainingRuns(f"{spec.name}-training-runs", {RUNS: runs, "max_run_usd": spec.budget.max_run_usd})
    pools = stack_pools(spec, catalog)
    platform = cloud_platform(spec, pools)
    deploy_workloads(spec, pools, platform)
    for key, value in platform.exports.items():
        pulumi.export(key, value)
