"""The cost report: its items add up, a small stack matches a hand computation, and diffs are per resource."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshstack.cli import main
from meshstack.core.catalog import load_catalog
from meshstack.core.stack_file import find_project
from meshstack.cost import HOURS_PER_MONTH
from meshstack.preview.plan import Preview, preview_stack
from tests.conftest import stack_config

MakeProject = Callable[[str, dict[str, Any]], Path]


def small_stack() -> dict[str, Any]:
    return {
        "aws:region": "us-east-1",
        "meshstack:environment": "staging",
        "meshstack:tags": {"team": "t", "project": "p", "cost-center": "1"},
        "meshstack:clusters": [
            {
                "name": "c",
                "kubernetes_version": "1.35",
                "node_pools": [
                    {
                        "name": "gpu",
                        "accelerator": "a10g",
                        "accelerators_per_node": 1,
                        "min_nodes": 2,
                        "max_nodes": 3,
                        "root_volume_gib": 100,
                    },
                ],
            }
        ],
        "meshstack:storage": {"buckets": [{"name": "data", "size_gib": 1000}]},
    }


def test_prod_items_add_up_to_the_reported_totals(preview: Callable[[str], Preview]) -> None:
    cost = preview("prod-aws").cost
    assert cost.hourly_usd == pytest.approx(sum(i.hourly_usd for i in cost.items))
    assert cost.monthly_usd == pytest.approx(sum(i.monthly_usd for i in cost.items))
    assert cost.peak_hourly_usd == pytest.approx(sum(i.peak_hourly_usd for i in cost.items))
    assert sum(cost.by_component().values()) == pytest.approx(cost.hourly_usd)
    h100 = next(i for i in cost.items if i.name == "prod-aws-train-h100")
    assert h100.description == (
        "0 x p5.48xlarge (capacity-block), 4 with its workloads running, up to 4; the block's 4 prepaid, used or not"
    )
    block = 4 * (31.464 + 500 * 0.08 / 730)
    assert (h100.idle_hourly_usd, h100.hourly_usd, h100.running_hourly_usd) == (pytest.approx(block),) * 3, (
        "the block is paid up front for all its instances: at every level, though its pool starts at 0 nodes"
    )
    assert h100.idle_watts == 0 and h100.running_watts > 0, "only running nodes draw power"
    for level in ("idle_hourly_usd", "running_hourly_usd"):
        assert getattr(cost, level) == pytest.approx(sum(getattr(i, level) for i in cost.items))
    data = preview("prod-aws").to_json()["cost"]
    assert data["hourly_usd"] == pytest.approx(sum(i["hourly_usd"] for i in data["items"]), abs=1e-3)
    assert data["price_date"] == "2025-10-01" and data["assumptions"]


def test_small_stack_matches_a_hand_computation(project_copy: MakeProject) -> None:
    cost = preview_stack("small", find_project(project_copy("small", small_stack()))).cost
    nodes = 2 * 1.006 + 2 * 100 * 0.08 / 730  # two g5.xlarge on demand, each with a 100 GiB gp3 root volume
    control_plane, nat, ipv4 = 0.10, 0.045, 0.005  # EKS, one NAT gateway and its public address
    keys = 2 * 1.00 / 730  # the secrets key and the storage key
    s3 = 1000 * 0.023 / 730
    endpoints = 3 * 2 * 0.01  # ECR API, ECR registry and STS interface endpoints in each of 2 AZs
    expected = nodes + control_plane + nat + ipv4 + keys + s3 + endpoints
    assert cost.hourly_usd == pytest.approx(expected)
    assert cost.monthly_usd == pytest.approx(expected * HOURS_PER_MONTH)
    assert cost.peak_hourly_usd == pytest.approx(expected + (1.006 + 100 * 0.08 / 730))


def test_running_figure_counts_the_nodes_the_workloads_pods_need(preview: Callable[[str], Preview]) -> None:
    """dev: the GPU pool idles at 0 and its training takes 2 nodes; the chat service's 2 replicas
    of 4 vCPUs each take both 4-vCPU system nodes, where one idles."""
    items = {i.name: i for i in preview("dev").cost.items}
    system, gpu = items["dev-dev-system"], items["dev-dev-gpu"]
    per_system_node = SYSTEM_SPOT + 200 * 0.08 / 730
    assert (system.idle_hourly_usd, system.hourly_usd) == (pytest.approx(per_system_node),) * 2
    assert system.running_hourly_usd == pytest.approx(2 * per_system_node)
    assert gpu.idle_hourly_usd == 0 and gpu.running_hourly_usd == pytest.approx(gpu.peak_hourly_usd)
    report = preview("dev").to_json()["cost"]
    assert report["idle_hourly_usd"] < report["running_hourly_usd"]


# m7i.xlarge spot in us-east-1: twice m7i.large's median over the region's zones in the price snapshot.
SYSTEM_SPOT = 2 * 0.0324


def test_spot_comes_from_the_price_snapshot_where_it_has_the_region(preview: Callable[[str], Preview]) -> None:
    system = next(i for i in preview("dev").cost.items if i.name == "dev-dev-system")
    assert system.hourly_usd == pytest.approx(SYSTEM_SPOT + 200 * 0.08 / 730)
    assumptions = preview("dev").cost.assumptions
    assert "m7i.xlarge spot in us-east-1: the price snapshot's median over the region's zones; it moves hourly" in (
        assumptions
    )


def test_other_regions_are_priced_from_the_snapshot_and_say_where_a_price_is_missing(
    project_copy: MakeProject,
) -> None:
    """us-west-2: g5.xlarge on demand at the snapshot's price; p5.4xlarge is not in it, so us-east-1's list
    price, said; ap-east-1 is not in it at all, so spot falls back to the catalog's discount, said."""
    config = small_stack()
    config["aws:region"] = "us-west-2"
    pools = config["meshstack:clusters"][0]["node_pools"]
    pools.append({"name": "one", "accelerator": "h100", "instance_type": "p5.4xlarge", "max_nodes": 1})
    cost = preview_stack("small", find_project(project_copy("small", config))).cost
    assert cost.price_basis == "us-west-2 prices"
    assert "p5.4xlarge: the catalog has no us-west-2 price; priced at us-east-1's list price" in cost.assumptions
    assert not any(a.startswith("g5.xlarge: the catalog has no") for a in cost.assumptions)
    catalog = load_catalog(cloud="aws")
    assert catalog.regional_prices["us-west-2"].instance_types["p5.48xlarge"] == pytest.approx(55.04, abs=0.01)
    assert "June 2025" in catalog.regional_prices["us-west-2"].notes["p5.48xlarge"]
    config["aws:region"] = "ap-east-1"
    config["meshstack:clusters"][0]["node_pools"] = [{**pools[0], "market": "spot"}]
    far = preview_stack("small", find_project(project_copy("small", config))).cost
    assert far.price_basis == "us-east-1 list prices: the catalog has no ap-east-1 prices"
    assert "g5.xlarge spot: on-demand less 65%, a typical discount; it moves hourly" in far.assumptions


def test_organisation_discounts_come_from_an_override_file(
    project_copy: MakeProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project_copy("small", small_stack())
    before = preview_stack("small", find_project(root)).cost
    override = tmp_path / "discounts.yaml"
    override.write_text(yaml.safe_dump({"discounts": {"instances": 20}}))
    monkeypatch.setenv("MESHSTACK_CATALOG", str(override))
    after = preview_stack("small", find_project(root)).cost
    assert before.hourly_usd - after.hourly_usd == pytest.approx(0.2 * 2 * 1.006)


def test_baseline_diff_resource_by_resource(
    project_copy: MakeProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = stack_config("dev")
    change = stack_config("dev")
    change["meshstack:clusters"][0]["node_pools"][0]["min_nodes"] = 2
    root = project_copy("dev", change)
    base_file = tmp_path / "base" / "Pulumi.dev.yaml"
    base_file.parent.mkdir()
    base_file.write_text(yaml.safe_dump({"config": base}))
    assert main(["--project", str(root), "preview", "--stack", "dev", "--json", "--baseline", str(base_file)]) == 0
    baseline = json.loads(capsys.readouterr().out)["cost"]["baseline"]
    one_node = SYSTEM_SPOT + 200 * 0.08 / 730
    assert baseline["delta_hourly_usd"] == pytest.approx(one_node, abs=1e-4)
    assert baseline["delta_running_hourly_usd"] == 0, "the chat service's replicas took both system nodes already"
    [changed] = baseline["changes"]
    assert changed["resource"] == "NodeGroup dev-system"
    assert changed["description"] == "2 x m7i.xlarge (spot), 2 with its workloads running, up to 2"
    assert changed["delta_monthly_usd"] == pytest.approx(one_node * 730, abs=0.01)
    assert main(["--project", str(root), "preview", "--stack", "dev", "--markdown", "--baseline", str(base_file)]) == 0
    comment = capsys.readouterr().out
    assert "| **difference**, running | **+$0.00** | **+$0.00** |" in comment
    assert "running its workloads $1.26/hour · $315.06/month (+$0.00/month)" in comment.splitlines()[3]
    assert "| energy per month | idle | as declared | running its workloads |" in comment
    assert "| kgCO2e (us-east-1, 379.1 g/kWh) |" in comment
    assert "| NodeGroup dev-system | 2 x m7i.xlarge (spot), 2 with its workloads running, up to 2 |" in comment


def test_baseline_can_be_another_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preview", "--stack", "prod-aws", "--baseline", "dev"]) == 0
    assert "Change against dev: +$" in capsys.readouterr().out


def test_missing_baseline_stack_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preview", "--stack", "dev", "--baseline", "nope"]) == 2
    assert "no stack 'nope'" in capsys.readouterr().err


def test_energy_at_the_three_levels_from_the_catalogs_power_figures(preview: Callable[[str], Preview]) -> None:
    """dev idles on one system node; running, it has two system nodes and two L4 nodes."""
    catalog = load_catalog(cloud="aws")
    system, gpu = catalog.instance_types["m7i.xlarge"], catalog.instance_types["g6.xlarge"]
    system_watts = (system.vcpus * 2.12 + system.memory_gib * 0.392) * 1.135
    gpu_watts = (72 * 0.8 + gpu.vcpus * 2.12 + gpu.memory_gib * 0.392) * 1.135
    assert catalog.node_watts("m7i.xlarge") == pytest.approx(system_watts)
    assert catalog.node_watts("g6.xlarge") == pytest.approx(gpu_watts)
    energy = preview("dev").cost.energy
    assert energy.idle_monthly_kwh == pytest.approx(system_watts * 730 / 1000)
    [run] = preview("dev").runs
    # The chat service keeps both system nodes busy all month; training takes both GPU nodes for its run only.
    assert energy.running_monthly_kwh == pytest.approx((2 * system_watts * 730 + 2 * gpu_watts * run.hours) / 1000)
    assert (energy.region, energy.grid_gco2e_per_kwh) == ("us-east-1", 379.1)
    assert energy.kg_co2e(1000) == pytest.approx(379.1)
    data = preview("dev").to_json()["cost"]["energy"]
    assert data["running_monthly_kg_co2e"] == pytest.approx(energy.running_monthly_kwh * 0.3791, abs=0.1)


def test_tpu_energy_is_marked_as_an_estimate_and_uses_the_stacks_region(preview: Callable[[str], Preview]) -> None:
    cost = preview("prod-gcp").cost
    assert cost.energy.region == "us-east5" and cost.energy.grid_gco2e_per_kwh == 343.48
    assert "tpu-v5p: board power is an estimate (its vendor publishes none)" in cost.assumptions


def test_a_region_without_a_grid_figure_says_so_instead_of_guessing(project_copy: MakeProject) -> None:
    config = stack_config("dev")
    config["aws:region"] = "ap-east-1"
    cost = preview_stack("dev", find_project(project_copy("dev", config))).cost
    assert cost.energy.grid_gco2e_per_kwh is None and cost.energy.kg_co2e(100) is None
    assert "no grid carbon intensity for ap-east-1 in the catalog: CO2 is not estimated" in cost.assumptions
    assert cost.energy.to_json()["running_monthly_kg_co2e"] is None


def test_the_training_run_is_timed_and_priced_with_the_shared_speed_model(
    preview: Callable[[str], Preview], capsys: pytest.CaptureFixture[str]
) -> None:
    """pretrain: 100,000 steps of 256 x 2048 tokens, 6 N per token, on 32 H100s at 40% of 989 TFLOP/s,
    on four p5.48xlarge at the capacity-block price."""
    result = preview("prod-aws")
    [run] = result.runs
    params = result.spec.workloads[0].model.param_count()
    tokens = 100_000 * 256 * 2048
    hours = 6 * params * tokens / (32 * 989e12 * 0.4) / 3600
    assert (run.tokens, run.devices, run.nodes) == (tokens, 32, 4)
    assert run.hours == pytest.approx(hours)
    assert run.cost_usd == pytest.approx(4 * 31.464 * hours)
    assert run.kg_co2e == pytest.approx(run.kwh * 0.3791)
    assert result.to_json()["training_runs"][0]["workload"] == "pretrain"
    assert main(["preview", "--stack", "prod-aws"]) == 0
    assert "Training run pretrain: 52.4B tokens, 1.61B parameters on 32 h100 (4 nodes)" in capsys.readouterr().out
