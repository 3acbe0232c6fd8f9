"""Validation refuses a stack whose declared jobs could never start, naming the numbers and what fits.

Through the CLI, as a user meets it: `meshstack validate` exits 2 with one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meshstack.cli import main
from tests.conftest import stack_config

MakeProject = Callable[[str, dict[str, Any]], Path]


def refused(project_copy: MakeProject, capsys: pytest.CaptureFixture[str], stack: str, config: dict[str, Any]) -> str:
    root = project_copy(stack, config)
    assert main(["--project", str(root), "validate", "--stack", stack]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, "one line"
    prefix = f"meshstack: Pulumi.{stack}.yaml: "
    assert err.startswith(prefix), "the line names the file"
    return err.removeprefix(prefix)


def prod_aws(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    config = stack_config("prod-aws")
    edit(config)
    return config


def cluster(config: dict[str, Any]) -> dict[str, Any]:
    return config["meshstack:clusters"][0]


def h100(config: dict[str, Any]) -> dict[str, Any]:
    return cluster(config)["node_pools"][1]


CASES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "queue too small": (
        lambda c: cluster(c)["queues"][0].update(nodes={"h100": 2}),
        "workloads[0].queue: needs 32 h100 (4 x 8); queue 'pretraining' admits 16 h100 "
        "(2 nodes of pool 'h100') with what its cohort 'foundation' lends",
    ),
    "queue without cohort": (
        lambda c: cluster(c)["queues"][0].update(nodes={"h100": 3}, cohort=None),
        "workloads[0].queue: needs 32 h100 (4 x 8); queue 'pretraining' admits 24 h100 (3 nodes of pool 'h100')",
    ),
    "unknown queue": (
        lambda c: c["meshstack:workloads"][0].update(queue="nightly"),
        "workloads[0].queue: no queue 'nightly': cluster 'train' has queues pretraining, experiments",
    ),
    "no queue named of several": (
        lambda c: c["meshstack:workloads"][0].pop("queue"),
        "workloads[0].queue: name one: cluster 'train' has queues pretraining, experiments",
    ),
    "unknown priority": (
        lambda c: c["meshstack:workloads"][0].update(priority="urgent"),
        "workloads[0].priority: no priority 'urgent' in cluster 'train': experiment, production",
    ),
    "reservation smaller than the job": (
        lambda c: h100(c).update(market="reservation", reserved_nodes=2),
        "workloads[0]: needs 32 h100 (4 x 8); the reservation of pool 'h100' holds 16 h100 (2 nodes of pool 'h100')",
    ),
    "capacity block bigger than its pool": (
        lambda c: h100(c).update(reserved_nodes=8),
        "clusters[0].node_pools[1].max_nodes: a capacity block of 8 instances is paid for whole, used or not: "
        "set max_nodes to 8 (not 4)",
    ),
    "reserved nodes off a reservation": (
        lambda c: cluster(c)["node_pools"][2].update(reserved_nodes=2),
        "clusters[0].node_pools[2].reserved_nodes: only capacity-block and reservation markets hold "
        "instances; market is 'on-demand'",
    ),
    "accelerator budget": (
        lambda c: c["meshstack:budget"].update(max_accelerators=30),
        "budget.max_accelerators: the workloads need 36 accelerators at once (pretrain 32 h100 (4 x 8), "
        "chat 4 l40s (4 x 1)); the budget allows 30",
    ),
    "quotas promise more than the pool": (
        lambda c: cluster(c)["queues"][1].update(nodes={"h100": 1}),
        "clusters[0].queues: the queues' quotas of pool 'h100' add up to 5 nodes (pretraining 4, "
        "experiments 1); the pool holds 4: lend through a cohort instead",
    ),
    "quota of a pool the cluster lacks": (
        lambda c: cluster(c)["queues"][1].update(nodes={"a100": 1}),
        "clusters[0].queues[1].nodes.a100: no pool 'a100' in this cluster: system, h100, serve",
    ),
    "quota over the pool": (
        lambda c: cluster(c)["queues"][0].update(nodes={"h100": 5}),
        "clusters[0].queues[0].nodes.h100: a quota of 5 nodes exceeds what pool 'h100' can hold (4)",
    ),
    "negative quota": (
        lambda c: cluster(c)["queues"][0].update(nodes={"h100": -1}),
        "clusters[0].queues[0].nodes.h100: a quota is a number of nodes, not -1",
    ),
    "priority name": (
        lambda c: cluster(c)["priorities"].update({"Top Priority": 5}),
        "clusters[0].priorities.Top Priority: 'Top Priority' is not a valid priority class name",
    ),
    "model too large for its devices": (
        lambda c: c["meshstack:workloads"][0]["model"].update(
            hidden_size=8192, num_hidden_layers=80, num_attention_heads=64, intermediate_size=28672
        ),
        "workloads[0].mesh: needs 430.0 GiB per h100: 145.0 GiB of weights, gradients and Adam state over "
        "fsdp x tensor = 8 devices and 285.0 GiB of activations for 2 sequences of 2048 tokens; a h100 holds "
        "80 GiB (72 usable)",
    ),
    "cache too large for a replica": (
        lambda c: c["meshstack:workloads"][1]["serve"].update(max_batch_size=512),
        "workloads[1].serve.max_batch_size: needs 195.0 GiB per l40s: 3.0 GiB of bf16 weights and 192.0 GiB of "
        "KV cache for 512 requests of 2048 tokens",
    ),
    "a KV budget that holds no request": (
        lambda c: c["meshstack:workloads"][1]["serve"].update(kv_cache_gib=0.001),
        "workloads[1].serve.kv_cache_gib: holds no request: one needs 0.3750 GiB of KV cache (24 layers x 2048 "
        "positions)",
    ),
    "client namespace": (
        lambda c: c["meshstack:workloads"][1]["clients"]["namespaces"].append("Bad_NS"),
        "workloads[1].clients.namespaces.Bad_NS: 'Bad_NS' is not a namespace name (a DNS label)",
    ),
    "private endpoint with no way in": (
        lambda c: cluster(c).pop("deployer_cidrs"),
        "clusters[0].deployer_cidrs: cluster 'train' has a private API endpoint and the stack deploys workloads "
        "into it: name the private networks `pulumi up` runs from",
    ),
    "placement group on a capacity block": (
        lambda c: h100(c).update(placement_group=True),
        "clusters[0].node_pools[1].placement_group: a capacity block places its instances itself",
    ),
    "capacity block started above zero": (
        lambda c: h100(c).update(desired_nodes=2),
        "clusters[0].node_pools[1].desired_nodes: a capacity-block pool starts at 0 nodes",
    ),
    "duplicate queue": (
        lambda c: cluster(c)["queues"][1].update(name="pretraining"),
        "clusters[0].queues[1].name: queue name 'pretraining' is used twice",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_capacity_that_does_not_add_up_is_refused(
    project_copy: MakeProject, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    edit, message = CASES[case]
    assert refused(project_copy, capsys, "prod-aws", prod_aws(edit)).startswith(message)


def test_a_cluster_without_queues_gets_one_default_queue_over_every_pool(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--stack", "dev"]) == 0
    config = stack_config("dev")
    assert "queues" not in config["meshstack:clusters"][0] and "queue" not in config["meshstack:workloads"][0]


def test_a_kubernetes_version_meshstack_pins_nothing_for_is_refused(
    project_copy: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    config = stack_config("dev")
    config["meshstack:clusters"][0]["kubernetes_version"] = "1.29"
    message = refused(project_copy, capsys, "dev", config)
    assert message == (
        "clusters[0].kubernetes_version: Kubernetes 1.29 is not supported: use one of 1.31, 1.32, 1.33, 1.34, 1.35, "
        "1.36"
    )
