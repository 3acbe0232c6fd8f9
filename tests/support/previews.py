"""Previews of stacks the tests make up (a config written into a fresh copy of the project), and the nodes
a workload of one would hold: shared by the admission, Karpenter, GKE and vendor tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from meshstack.core.catalog import load_catalog
from meshstack.core.stack_file import find_project
from meshstack.preview.plan import Preview, preview_stack
from meshstack.preview.recorder import Resource
from tests.conftest import stack_config
from tests.support.admission_model import ClusterModel
from tests.support.specs import pools


def previewed(tmp: Path, stack: str, config: dict[str, Any]) -> Preview:
    """The preview of `config` as stack `stack`, in a project made under `tmp`."""
    root = tmp / "project"
    (root / "stacks").mkdir(parents=True)
    here = find_project(Path(__file__).parents[2]).root
    (root / "Pulumi.yaml").write_text((here / "Pulumi.yaml").read_text())
    (root / "stacks" / "__main__.py").write_text((here / "stacks" / "__main__.py").read_text())
    (root / "stacks" / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))
    return preview_stack(stack, find_project(root))


def held_nodes(resources: list[Resource], cloud: str, workload: str, launchable: dict[str, int]) -> dict[str, int]:
    """The nodes a workload's pods take, pool by pool, when each named pool's market can give only so many
    instances (the rest of the reservation is taken, spot is short)."""
    model = ClusterModel(resources, load_catalog(cloud=cloud))
    for pool in model.pools:
        pool.launchable = launchable.get(pool.name, pool.launchable)
    outcome = next(o for o in model.run() if o.workload == workload)
    assert outcome.admitted and outcome.placed, outcome.reason
    held = [pool.name for pool, _node, _requests in model.held[workload]]
    return {name: held.count(name) for name in dict.fromkeys(held)}


def karpenter_config() -> dict[str, Any]:
    """prod-aws under Karpenter: the capacity-block H100 pool and the L40S pool (spot, then on-demand) go to
    Karpenter, the CPU system pool stays a managed node group, and a CPU pool of two types falls back too."""
    config = stack_config("prod-aws")
    cluster = config["meshstack:clusters"][0]
    cluster["autoscaler"] = "karpenter"
    serve = pools(config)[2]
    serve.update(min_nodes=0, market="spot", fallback=["on-demand"])
    pools(config).append(
        {
            "name": "batch",
            "accelerator": "cpu",
            "instance_types": ["m7i.xlarge", "m7i.2xlarge"],
            "min_nodes": 1,
            "max_nodes": 3,
            "market": "spot",
            "fallback": ["on-demand"],
        }
    )
    return config


def karpenter_preview(tmp: Path) -> Preview:
    """The preview of karpenter_config's stack, in a project made under `tmp`."""
    return previewed(tmp, "kp", karpenter_config())
