"""A job on a pool with a market fallback, followed through what the cluster would do with the preview's
objects: it takes the reservation (a capacity block) first and, once the block has no instance left to
give, the next market of the pool's order. Under cluster-autoscaler the order is the priority expander's
`expanderPriorities` as rendered into its chart's values; under Karpenter, the capacity types the
NodePool allows, which Karpenter takes reserved, then spot, then on-demand. Tests: tests/support/admission_model.py."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
import yaml

from meshstack.core.catalog import load_catalog
from meshstack.preview.plan import Preview
from meshstack.preview.recorder import Resource
from tests.conftest import one, stack_config
from tests.support.admission_model import ClusterModel
from tests.support.previews import held_nodes, karpenter_config, previewed
from tests.support.specs import pools

# prod-aws's pretrain: 4 nodes of 8 H100s, on the capacity-block pool of 4 nodes.
PRETRAIN_NODES = 4


def with_fallback(config: dict[str, Any]) -> dict[str, Any]:
    """The H100 capacity block falls back to spot, then on-demand."""
    pools(config)[1]["fallback"] = ["spot", "on-demand"]
    return config


@pytest.fixture(scope="module")
def managed(tmp_path_factory: pytest.TempPathFactory) -> Preview:
    return previewed(tmp_path_factory.mktemp("managed"), "fb", with_fallback(stack_config("prod-aws")))


@pytest.fixture(scope="module")
def karpenter(tmp_path_factory: pytest.TempPathFactory) -> Preview:
    return previewed(tmp_path_factory.mktemp("karpenter"), "kfb", with_fallback(karpenter_config()))


def pretrain_nodes(resources: list[Resource], launchable: dict[str, int]) -> dict[str, int]:
    return held_nodes(resources, "aws", "pretrain", launchable)


def test_a_job_takes_the_capacity_block_while_it_has_instances(managed: Preview) -> None:
    assert pretrain_nodes(managed.resources, {}) == {"fb-train-h100": PRETRAIN_NODES}


def test_a_taken_block_falls_back_to_spot_then_on_demand_in_the_rendered_order(managed: Preview) -> None:
    assert pretrain_nodes(managed.resources, {"fb-train-h100": 1}) == {"fb-train-h100": 1, "fb-train-h100-spot": 3}
    short = {"fb-train-h100": 1, "fb-train-h100-spot": 2}
    assert pretrain_nodes(managed.resources, short) == {
        "fb-train-h100": 1,
        "fb-train-h100-spot": 2,
        "fb-train-h100-on-demand": 1,
    }


def test_the_model_follows_the_rendered_priorities_not_the_pool_order(managed: Preview) -> None:
    """The same stack with its expander priorities reversed (what a wrong rendering would send): the
    on-demand group grows first. The tests above hold only because the rendered numbers are right."""
    [release] = [r for r in managed.resources if r.name == "fb-train-addons-cluster-autoscaler"]
    priorities = yaml.safe_load(release.inputs["values"]["expanderPriorities"])
    levels = sorted(p for p in priorities if p > 1)
    reversed_ = {1: priorities[1], **{new: priorities[old] for old, new in zip(levels, reversed(levels), strict=True)}}
    values = {**release.inputs["values"], "expanderPriorities": yaml.safe_dump(reversed_)}
    wrong = dataclasses.replace(release, inputs={**release.inputs, "values": values})
    resources = [wrong if r is release else r for r in managed.resources]
    assert pretrain_nodes(resources, {}) == {"fb-train-h100-on-demand": PRETRAIN_NODES}


def test_a_group_no_priority_names_is_never_grown(managed: Preview) -> None:
    """Were the L40S pool's group named by no pattern (no catch-all level either), the chat service's
    replicas would stay Pending: the priority expander drops every group no pattern matches."""
    [release] = [r for r in managed.resources if r.name == "fb-train-addons-cluster-autoscaler"]
    priorities = yaml.safe_load(release.inputs["values"]["expanderPriorities"])
    del priorities[1]
    priorities = {p: [x for x in patterns if "serve" not in x] for p, patterns in priorities.items()}
    values = {**release.inputs["values"], "expanderPriorities": yaml.safe_dump(priorities)}
    wrong = dataclasses.replace(release, inputs={**release.inputs, "values": values})
    model = ClusterModel([wrong if r is release else r for r in managed.resources], load_catalog(cloud="aws"))
    outcomes = {o.workload: o for o in model.run()}
    assert outcomes["pretrain"].placed
    assert not outcomes["chat"].placed
    assert "fb-train-serve named by no expander priority" in outcomes["chat"].reason


def test_karpenter_takes_reserved_then_spot_then_on_demand(karpenter: Preview) -> None:
    node_pool = one(karpenter, "kubernetes:karpenter.sh/v1:NodePool", "kfb-train-karpenter-h100")
    requirements = node_pool.inputs["spec"]["template"]["spec"]["requirements"]
    capacity = next(r for r in requirements if r["key"] == "karpenter.sh/capacity-type")
    assert capacity["values"] == ["reserved", "spot", "on-demand"]
    assert pretrain_nodes(karpenter.resources, {}) == {"h100/reserved": PRETRAIN_NODES}
    short = {"h100/reserved": 1, "h100/spot": 2}
    assert pretrain_nodes(karpenter.resources, short) == {"h100/reserved": 1, "h100/spot": 2, "h100/on-demand": 1}


def test_karpenter_cannot_fall_back_to_a_capacity_type_the_nodepool_leaves_out(karpenter: Preview) -> None:
    """A NodePool rendered without on-demand (a wrong rendering): once the block and spot are short, a pod
    of pretrain stays Pending, the NodePool's limit notwithstanding."""
    node_pool = one(karpenter, "kubernetes:karpenter.sh/v1:NodePool", "kfb-train-karpenter-h100")
    body = copy.deepcopy(node_pool.inputs)
    for requirement in body["spec"]["template"]["spec"]["requirements"]:
        if requirement["key"] == "karpenter.sh/capacity-type":
            requirement["values"] = ["reserved", "spot"]
    resources = [dataclasses.replace(r, inputs=body) if r is node_pool else r for r in karpenter.resources]
    model = ClusterModel(resources, load_catalog(cloud="aws"))
    for pool in model.pools:
        pool.launchable = {"h100/reserved": 1, "h100/spot": 2}.get(pool.name)
    outcome = next(o for o in model.run() if o.workload == "pretrain")
    assert outcome.admitted and not outcome.placed
    assert "h100/spot with no spot capacity left" in outcome.reason
