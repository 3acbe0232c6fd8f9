"""Karpenter on EKS, several instance types per pool and a market fallback: what a stack asking for them
previews (objects checked against the published Karpenter CRD schemas), what the estimate and the pack
make of it, and the bad input refused at validation with the field named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from meshstack.preview.plan import Preview
from meshstack.preview.policy_runner import evaluate
from tests.conftest import of_type, one, stack_config
from tests.support.cli_project import init, meshstack, read_config, write_config
from tests.support.graph import Graph
from tests.support.previews import karpenter_config, karpenter_preview
from tests.support.schemas import crd_schema
from tests.support.specs import pools, problems_of

NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
RELEASE = "kubernetes:helm.sh/v3:Release"


@pytest.fixture(scope="module")
def karpenter(tmp_path_factory: pytest.TempPathFactory) -> Preview:
    return karpenter_preview(tmp_path_factory.mktemp("karpenter"))


def body(resource: Any) -> dict[str, Any]:
    return json.loads(json.dumps(resource.inputs, default=str))


def test_nodepools_and_nodeclasses_validate_against_the_published_crds(karpenter: Preview) -> None:
    objects = of_type(karpenter, NODE_POOL) + of_type(karpenter, NODE_CLASS)
    assert {o.inputs["metadata"]["name"] for o in objects} == {"h100", "serve"}
    for resource in objects:
        manifest = body(resource)
        schema = crd_schema(manifest["apiVersion"], manifest["kind"])
        errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(manifest))
        assert not errors, f"{resource.name}: {[e.message for e in errors]}"


def test_the_schema_refuses_what_karpenter_would() -> None:
    schema = crd_schema("karpenter.sh/v1", "NodePool")
    bad = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "spec": {"template": {"spec": {"nodeClass": {}}}}}
    assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors(bad))


def test_a_pool_renders_its_types_markets_reservation_and_taints(karpenter: Preview) -> None:
    h100 = one(karpenter, NODE_POOL, "kp-train-karpenter-h100").inputs["spec"]
    requirements = {r["key"]: r["values"] for r in h100["template"]["spec"]["requirements"]}
    assert requirements["node.kubernetes.io/instance-type"] == ["p5.48xlarge"]
    assert requirements["karpenter.sh/capacity-type"] == ["reserved"]
    assert requirements["topology.k8s.aws/zone-id"] == ["use1-az4"]
    assert h100["limits"] == {"nodes": "4"}
    assert h100["disruption"]["consolidationPolicy"] == "WhenEmpty"
    assert h100["template"]["spec"]["expireAfter"] == "Never"
    assert {"key": "meshstack.io/dedicated", "value": "training", "effect": "NoSchedule"} in h100["template"]["spec"][
        "taints"
    ]
    node_class = one(karpenter, NODE_CLASS, "kp-train-karpenter-h100-class").inputs["spec"]
    assert node_class["capacityReservationSelectorTerms"] == [{"id": "cr-0a1b2c3d4e5f60718"}]
    assert node_class["amiSelectorTerms"] == [{"alias": "al2023@v20260714"}]
    assert node_class["metadataOptions"]["httpTokens"] == "required"
    assert "LimitMEMLOCK=infinity" in node_class["userData"]  # EFA pool
    serve = one(karpenter, NODE_POOL, "kp-train-karpenter-serve").inputs["spec"]
    serve_types = {r["key"]: r["values"] for r in serve["template"]["spec"]["requirements"]}
    assert serve_types["karpenter.sh/capacity-type"] == ["spot", "on-demand"]


def test_training_pods_on_karpenter_nodes_may_not_be_disrupted(karpenter: Preview) -> None:
    [jobset] = [r for r in karpenter.resources if r.type.endswith(":JobSet")]
    template = jobset.inputs["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]
    assert template["metadata"]["annotations"] == {"karpenter.sh/do-not-disrupt": "true"}


def test_karpenter_gets_its_queue_rules_iam_and_access_and_the_objects_wait_for_its_crds(karpenter: Preview) -> None:
    graph = Graph(karpenter.resources)
    release = one(karpenter, RELEASE, "kp-train-addons-karpenter")
    assert release.inputs["values"]["settings"]["interruptionQueue"] == "kp-train"
    queue = one(karpenter, "aws:sqs/queue:Queue", "kp-train-karpenter-interruptions")
    assert queue.inputs["name"] == "kp-train" and queue.inputs["sqsManagedSseEnabled"] is True
    rules = of_type(karpenter, "aws:cloudwatch/eventRule:EventRule")
    assert len(rules) == 5 and len(of_type(karpenter, "aws:cloudwatch/eventTarget:EventTarget")) == 5
    entry = one(karpenter, "aws:eks/accessEntry:AccessEntry", "kp-train-karpenter-node")
    assert entry.inputs["type"] == "EC2_LINUX"
    identity = one(karpenter, "aws:eks/podIdentityAssociation:PodIdentityAssociation", "kp-train-karpenter-controller")
    assert identity.inputs["serviceAccount"] == "karpenter"
    assert identity.urn in graph.waits_for(release.urn)
    for resource in of_type(karpenter, NODE_POOL) + of_type(karpenter, NODE_CLASS):
        assert release.urn in graph.waits_for(resource.urn), f"{resource.name} may be sent before its CRD"


def test_managed_pools_fall_back_through_their_own_groups_under_the_priority_expander(karpenter: Preview) -> None:
    first = one(karpenter, "aws:eks/nodeGroup:NodeGroup", "kp-train-batch").inputs
    fallback = one(karpenter, "aws:eks/nodeGroup:NodeGroup", "kp-train-batch-on-demand").inputs
    assert first["instanceTypes"] == fallback["instanceTypes"] == ["m7i.xlarge", "m7i.2xlarge"]
    assert (first["capacityType"], fallback["capacityType"]) == ("SPOT", "ON_DEMAND")
    assert first["scalingConfig"]["minSize"] == 1 and fallback["scalingConfig"]["minSize"] == 0
    values = one(karpenter, RELEASE, "kp-train-addons-cluster-autoscaler").inputs["values"]
    assert values["extraArgs"]["expander"] == "priority,least-waste"
    priorities = yaml.safe_load(values["expanderPriorities"])
    assert priorities[1] == [".*"]
    # Each pool's groups in its market order; the system pool's one group on the first level.
    assert priorities[21] == ["^eks-batch-[0-9]{18}"]
    assert priorities[11] == ["^eks-system-[0-9]{18}", "^eks-batch-on-demand-[0-9]{18}"]


def test_the_estimate_prices_the_first_market_and_states_the_fallbacks(karpenter: Preview) -> None:
    items = {i.name: i for i in karpenter.cost.items}
    serve = items["kp-train-karpenter-serve"]
    assert "(spot)" in serve.description and "falls back to on-demand at $" in serve.description
    assert serve.running_hourly_usd > 0  # the chat service's replicas, priced on spot
    h100 = items["kp-train-karpenter-h100"]
    assert h100.idle_hourly_usd == h100.peak_hourly_usd > 0  # a capacity block is paid whole
    assert items["kp-train-batch-on-demand"].running_hourly_usd == 0


def test_the_pack_judges_the_nodepools(karpenter: Preview) -> None:
    """Through the pack as the engine runs it: the caps on accelerators and node counts read a NodePool's
    limits as they read a node group's max size."""
    assert not karpenter.mandatory_violations
    fired = evaluate(
        karpenter.resources, {"accelerator-cap": {"max_accelerators": 8}, "node-group-max-size": {"max_nodes": 3}}
    )
    [cap] = [v for v in fired if v.rule_id == "MS-COST-001"]
    assert "kp-train-karpenter-h100: 32" in cap.message
    sizes = [v.message for v in fired if v.rule_id == "MS-COST-003"]
    assert any("kp-train-karpenter-serve' can grow to 4 nodes" in m for m in sizes), sizes


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (
            {1: {"instance_types": ["p5.48xlarge", "p5en.48xlarge"]}},
            "node_pools[1].instance_types[1]",
            "carries h200, not h100",
        ),
        (
            {0: {"instance_type": None, "instance_types": ["m7i.xlarge", "g6e.xlarge"]}},
            "node_pools[0].instance_types[1]",
            "carries l40s",
        ),
        (
            {0: {"instance_type": None, "instance_types": ["m7i.xlarge", "m7i.xlarge"]}},
            "node_pools[0].instance_types[1]",
            "twice",
        ),
        ({2: {"fallback": ["spot", "spot"]}}, "node_pools[2].fallback[1]", "already"),
        ({2: {"market": "spot", "fallback": ["spot"]}}, "node_pools[2].fallback[0]", "already"),
        ({2: {"fallback": ["capacity-block"]}}, "node_pools[2].fallback[0]", "spot"),
    ],
)
def test_bad_types_and_fallbacks_are_refused_naming_the_field(
    change: dict[int, dict[str, Any]], field: str, words: str
) -> None:
    config = stack_config("prod-aws")
    for index, values in change.items():
        pools(config)[index].update(values)
    [(path, message)] = problems_of(config, "prod-aws")
    assert path == f"clusters[0].{field}" and words in message, (path, message)


def test_a_fallback_to_a_market_a_type_is_not_sold_in_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No shipped AWS type lacks spot; an override file (as a user writes one) takes it away from one."""
    override = tmp_path / "no-spot.yaml"
    override.write_text("instance_types: {g6e.xlarge: {spot: false}}\n")
    monkeypatch.setenv("MESHSTACK_CATALOG", str(override))
    config = stack_config("prod-aws")
    pools(config)[2].update(market="on-demand", fallback=["spot"])
    [(path, message)] = problems_of(config, "prod-aws")
    assert path == "clusters[0].node_pools[2].fallback[0]" and "g6e.xlarge cannot be had as spot" in message


def test_karpenter_refusals_name_the_field() -> None:
    config = karpenter_config()
    pools(config)[2].update(market="on-demand", fallback=["spot"])
    [(path, message)] = problems_of(config, "prod-aws")
    assert path == "clusters[0].node_pools[2].fallback" and "reserved capacity, then spot" in message
    config = karpenter_config()
    for pool in pools(config):
        pool["min_nodes"] = 0
    [(path, message)] = problems_of(config, "prod-aws")
    assert path == "clusters[0].node_pools" and "does not manage" in message


def test_the_cli_refuses_mixed_accelerators_in_one_line(tmp_path: Path) -> None:
    project = init(tmp_path / "proj")
    config = read_config(project)
    pool = config["meshstack:clusters"][0]["node_pools"][-1]
    pool.pop("instance_type", None)
    pool.pop("accelerators_per_node", None)
    pool.update(accelerator="h100", instance_types=["p5.48xlarge", "p5en.48xlarge"])
    write_config(project, config)
    done = meshstack("preview", "--stack", "dev", cwd=project)
    assert done.returncode == 2, done.stderr
    [line] = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert "instance_types[1]" in line and "h200" in line
