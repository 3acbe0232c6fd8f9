"""Composes the components a spec asks for. The one place that knows how a stack is put together."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import pulumi

from components.governance import StackGovernance, StackGovernanceArgs
from components.platform import Platform
from meshstack.core.catalog import Catalog, load_catalog
from meshstack.core.nodes import NodePoolArgs
from meshstack.core.spec import StackSpec
from meshstack.program.placement import deploy_workloads
from meshstack.program.pools import stack_pools


def cloud_platform(spec: StackSpec, pools: Mapping[tuple[str, str], NodePoolArgs]) -> Platform:
    """The cloud's own module (components/<cloud>/platform.py) declares its network, storage and clusters."""
    module = importlib.import_module(f"components.{spec.cloud}.platform")
    result: Platform = module.platform(spec, pools)
    return result


def build(spec: StackSpec, catalog: Catalog | None = None) -> None:
    """Declare the stack's infrastructure and workloads, and export what operators need to reach them."""
    catalog = catalog or load_catalog(cloud=spec.cloud)
    StackGovernance(
        f"{spec.name}-budget",
        StackGovernanceArgs(
            cloud=spec.cloud, region=spec.region, environment=spec.environment, **spec.budget.model_dump()
        ),
    )
    pools = stack_pools(spec, catalog)
    platform = cloud_platform(spec, pools)
    deploy_workloads(spec, pools, platform)
    for key, value in platform.exports.items():
        pulumi.export(key, value)
