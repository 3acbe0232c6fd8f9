"""A GKE pool with several machine types and a market fallback: a node pool per market and type, bound to a
custom compute class (its label and taint) whose priorities list them in the order they are tried, pods
that ask for the class, and a job followed through what GKE's autoscaler does with them
(tests/support/admission_model.py): the reservation first, then spot, then on-demand, each on the first type
before the second."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from meshstack.core.catalog import load_catalog
from meshstack.preview.plan import Preview
from meshstack.preview.recorder import Resource
from tests.conftest import of_type, stack_config
from tests.support.admission_model import ClusterModel
from tests.support.cli_project import init, meshstack, write_config
from tests.support.previews import held_nodes, previewed
from tests.support.schemas import crd_schema
from tests.support.specs import pools, problems_of

CLASS = "meshstack-h100"
COMPUTE_CLASS = "kubernetes:cloud.google.com/v1:ComputeClass"
NODE_POOL = "gcp:container/nodePool:NodePool"
# The node pools of pool h100 on cluster `tpu` of stack `flex`, in the order the class tries them.
ORDER = ["flex-tpu-h100", "flex-tpu-h100-spot", "flex-tpu-h100-spot-2", "flex-tpu-h100-od", "flex-tpu-h100-od-2"]
MACHINES = ["a3-megagpu-8g", "a3-megagpu-8g", "a3-highgpu-8g", "a3-megagpu-8g", "a3-highgpu-8g"]


def flexible_gcp() -> dict[str, Any]:
    """prod-gcp with an H100 pool that takes its reservation, then spot, then on-demand, each on a3-megagpu
    before a3-highgpu, and a fine-tuning job of two nodes on it."""
    config = stack_config("prod-gcp")
    pools(config).append(
        {
            "name": "h100",
            "accelerator": "h100",
            "instance_types": ["a3-megagpu-8g", "a3-highgpu-8g"],
            "min_nodes": 0,
            "max_nodes": 2,
            "market": "reservation",
            "reservation_id": "h100-foundation",
            "reserved_nodes": 2,
            "fallback": ["spot", "on-demand"],
            "zone": "us-east5-a",
            "taints": [{"key": "meshstack.io/dedicated", "value": "training", "effect": "NoSchedule"}],
        }
    )
    pretrain = config["meshstack:workloads"][0]
    finetune = copy.deepcopy(pretrain)
    finetune.update(name="finetune", node_pool="h100", processes=2, mesh={"data": 2, "fsdp": 8})
    finetune["train"].update(global_batch=32, micro_batches=2)
    finetune["checkpoints"] = {"bucket": "checkpoints", "prefix": "finetune"}
    config["meshstack:workloads"].append(finetune)
    # Each node pool of the class may grow to the pool's max_nodes: at the peak, 5 x 2 nodes of 8 H100s.
    config["meshstack:budget"]["max_accelerators"] = 240
    return config


@pytest.fixture(scope="module")
def flex(tmp_path_factory: pytest.TempPathFactory) -> Preview:
    return previewed(tmp_path_factory.mktemp("flex"), "flex", flexible_gcp())


def node_pools(preview: Preview) -> dict[str, Resource]:
    return {r.name: r for r in of_type(preview, NODE_POOL) if r.name.startswith("flex-tpu-h100")}


def the_class(resources: list[Resource]) -> Resource:
    [body] = [r for r in resources if r.type == COMPUTE_CLASS]
    return body


def test_a_node_pool_per_market_and_type_each_bound_to_the_class(flex: Preview) -> None:
    members = node_pools(flex)
    assert sorted(members) == sorted(ORDER)
    for name, machine in zip(ORDER, MACHINES, strict=True):
        config = members[name].inputs["nodeConfig"]
        assert config["machineType"] == machine
        assert config["labels"]["cloud.google.com/compute-class"] == CLASS
        assert config["labels"]["meshstack.io/node-pool"] == "h100"
        assert {"key": "cloud.google.com/compute-class", "value": CLASS, "effect": "NO_SCHEDULE"} in config["taints"]
        assert config["spot"] is ("spot" in name)
        gpu = "nvidia-h100-mega-80gb" if machine == "a3-megagpu-8g" else "nvidia-h100-80gb"
        assert [a["type"] for a in config["guestAccelerators"]] == [gpu]
    first = members["flex-tpu-h100"].inputs["nodeConfig"]
    assert first["reservationAffinity"]["values"] == ["h100-foundation"]
    assert first["resourceLabels"]["meshstack-fallback"] == "spot_on-demand"
    # The reservation holds a3-megagpu-8g alone: no node pool of another type consumes it.
    assert all("reservationAffinity" not in members[n].inputs["nodeConfig"] for n in ORDER[1:])
    # Pools the spec gives no fallback or second type get no class.
    others = [r for r in of_type(flex, NODE_POOL) if not r.name.startswith("flex-tpu-h100")]
    assert others and all("cloud.google.com/compute-class" not in r.inputs["nodeConfig"]["labels"] for r in others)


def test_the_class_lists_the_node_pools_in_order_and_meets_its_published_schema(flex: Preview) -> None:
    body = the_class(flex.resources).inputs
    names = {r.name: r.outputs["name"] for r in node_pools(flex).values()}
    assert [p["nodepools"] for p in body["spec"]["priorities"]] == [[names[n]] for n in ORDER]
    assert body["metadata"]["name"] == CLASS
    assert body["spec"]["nodePoolAutoCreation"] == {"enabled": False}
    assert body["spec"]["activeMigration"] == {"optimizeRulePriority": False}
    schema = crd_schema(body["apiVersion"], body["kind"])
    errors = [e.message for e in jsonschema.validators.validator_for(schema)(schema).iter_errors(body)]
    assert not errors, errors


def test_the_jobs_pods_and_its_flavor_ask_for_the_class(flex: Preview) -> None:
    [jobset] = [r for r in flex.resources if r.type.endswith("JobSet") and r.inputs["metadata"]["name"] == "finetune"]
    pod = jobset.inputs["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"]["cloud.google.com/compute-class"] == CLASS
    toleration = {"key": "cloud.google.com/compute-class", "operator": "Equal", "value": CLASS, "effect": "NoSchedule"}
    assert toleration in pod["tolerations"]
    [flavor] = [
        r for r in flex.resources if r.type.endswith("ResourceFlavor") and r.inputs["metadata"]["name"] == "h100"
    ]
    assert flavor.inputs["spec"]["nodeLabels"]["cloud.google.com/compute-class"] == CLASS
    assert {"key": "cloud.google.com/compute-class", "value": CLASS, "effect": "NoSchedule"} in flavor.inputs["spec"][
        "nodeTaints"
    ]


def finetune_nodes(resources: list[Resource], launchable: dict[str, int]) -> dict[str, int]:
    return held_nodes(resources, "gcp", "finetune", launchable)


def test_a_job_takes_the_reservation_then_spot_then_on_demand_first_type_first(flex: Preview) -> None:
    assert finetune_nodes(flex.resources, {}) == {"flex-tpu-h100": 2}
    assert finetune_nodes(flex.resources, {"flex-tpu-h100": 1}) == {"flex-tpu-h100": 1, "flex-tpu-h100-spot": 1}
    no_mega_spot = {"flex-tpu-h100": 0, "flex-tpu-h100-spot": 0}
    assert finetune_nodes(flex.resources, no_mega_spot) == {"flex-tpu-h100-spot-2": 2}
    no_spot = {**no_mega_spot, "flex-tpu-h100-spot-2": 0}
    assert finetune_nodes(flex.resources, no_spot) == {"flex-tpu-h100-od": 2}


def test_the_model_follows_the_rendered_class_not_the_pool_order(flex: Preview) -> None:
    """The class with its priorities reversed (a wrong rendering): the last node pool grows first. The test
    above holds only because the rendered order is right."""
    body = copy.deepcopy(the_class(flex.resources).inputs)
    body["spec"]["priorities"].reverse()
    wrong = dataclasses.replace(the_class(flex.resources), inputs=body)
    resources = [wrong if r.type == COMPUTE_CLASS else r for r in flex.resources]
    assert finetune_nodes(resources, {}) == {"flex-tpu-h100-od-2": 2}


def test_a_bound_node_pool_no_priority_names_is_never_grown(flex: Preview) -> None:
    body = copy.deepcopy(the_class(flex.resources).inputs)
    body["spec"]["priorities"] = body["spec"]["priorities"][:1]
    wrong = dataclasses.replace(the_class(flex.resources), inputs=body)
    model = ClusterModel([wrong if r.type == COMPUTE_CLASS else r for r in flex.resources], load_catalog(cloud="gcp"))
    for pool in model.pools:
        pool.launchable = {"flex-tpu-h100": 1}.get(pool.name)
    outcome = next(o for o in model.run() if o.workload == "finetune")
    assert outcome.admitted and not outcome.placed
    assert "flex-tpu-h100-spot named by no compute class priority" in outcome.reason


def test_the_estimate_prices_the_reservation_and_states_the_fallbacks(flex: Preview) -> None:
    items = {i.name: i for i in flex.cost.items}
    first = items["flex-tpu-h100"].description
    assert "(reservation" in first and "falls back to spot at $" in first and ", then on-demand at $" in first
    assert items["flex-tpu-h100"].running_hourly_usd > 0  # finetune's two nodes, on the reservation
    assert all(items[n].running_hourly_usd == 0 for n in ORDER[1:])


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (
            {"fallback": []},
            "node_pools[3].instance_types[1]",
            "a GKE reservation holds one machine type (a3-megagpu-8g)",
        ),
        ({"fallback": ["spot", "spot"]}, "node_pools[3].fallback[1]", "already"),
        ({"name": "h100-flexible-capacity"}, "node_pools[3].name", "GKE would refuse node pool 'tpu-h100-flexible"),
        (
            {"instance_types": ["a3-megagpu-8g", "a3-ultragpu-8g"]},
            "node_pools[3].instance_types[1]",
            "carries h200, not h100",
        ),
    ],
)
def test_bad_flexible_pools_are_refused_naming_the_field(change: dict[str, Any], field: str, words: str) -> None:
    config = flexible_gcp()
    config["meshstack:workloads"].pop()
    pools(config)[3].update(change)
    [(path, message)] = problems_of(config, "prod-gcp")
    assert path == f"clusters[0].{field}" and words in message, (path, message)


def test_a_multi_host_slice_cannot_fall_back() -> None:
    config = stack_config("prod-gcp")
    pools(config)[1]["fallback"] = ["on-demand"]
    [(path, message)] = problems_of(config, "prod-gcp")
    assert path == "clusters[0].node_pools[1].fallback" and "created and removed whole" in message, (path, message)


def test_a_single_host_tpu_pool_falls_back_through_the_class(tmp_path: Path) -> None:
    config = stack_config("prod-gcp")
    pools(config)[2].update(market="spot", fallback=["on-demand"])
    preview = previewed(tmp_path, "tpufb", config)
    names = {r.name: r.outputs["name"] for r in of_type(preview, NODE_POOL) if r.name.startswith("tpufb-tpu-serve")}
    assert sorted(names) == ["tpufb-tpu-serve", "tpufb-tpu-serve-od"]
    priorities = the_class(preview.resources).inputs["spec"]["priorities"]
    assert [p["nodepools"] for p in priorities] == [[names["tpufb-tpu-serve"]], [names["tpufb-tpu-serve-od"]]]


@pytest.mark.slow
def test_through_the_cli_the_class_and_every_manifest_validate(tmp_path: Path) -> None:
    """`meshstack preview --manifests` in a project `init` made: the ComputeClass file is there and meets the
    published schema, and a bad pool is one line and exit 2."""
    project = init(tmp_path / "proj", "gcp")
    write_config(project, flexible_gcp(), "prod-gcp")
    out = tmp_path / "manifests"
    done = meshstack("preview", "--stack", "prod-gcp", "--json", "--manifests", str(out), cwd=project)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["resources"]
    [written] = [yaml.safe_load(p.read_text()) for p in out.rglob("*.yaml") if "ComputeClass" in p.read_text()]
    schema = crd_schema(written["apiVersion"], written["kind"])
    assert not list(jsonschema.validators.validator_for(schema)(schema).iter_errors(written))
    assert len(written["spec"]["priorities"]) == len(ORDER)
    bad = flexible_gcp()
    pools(bad)[1]["fallback"] = ["on-demand"]
    write_config(project, bad, "prod-gcp")
    done = meshstack("preview", "--stack", "prod-gcp", cwd=project)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "clusters[0].node_pools[1].fallback" in line
