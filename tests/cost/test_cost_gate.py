"""Costs a budget gate can trust, run from a project `meshstack init` made: a capacity block paid at every
level, a training run priced per run (and held to max_run_usd) while a month's running cost counts it once,
the pull-request comment's headline on the running figure, and each region's own prices, with what is
missing said."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshstack.core.catalog import load_catalog
from tests.support.cli_project import init, meshstack, read_config, write_config

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/meshstack:0.1.0"
PRETRAIN: dict[str, Any] = {
    "name": "pretrain",
    "kind": "training",
    "cluster": "main",
    "node_pool": "h100",
    "image": IMAGE,
    "processes": 2,
    "mesh": {"data": 2, "fsdp": 8},
    "model": {"d_model": 2048, "n_layers": 24, "n_heads": 16, "d_ff": 8192, "max_seq_len": 2048},
    "train": {
        "steps": 2000,
        "global_batch": 256,
        "seq_len": 2048,
        "micro_batches": 4,
        "learning_rate": 0.0003,
        "warmup_steps": 100,
        "compute_dtype": "bfloat16",
        "checkpoint_every": 500,
    },
    "data": {"bucket": "artifacts", "prefix": "tokens"},
    "checkpoints": {"bucket": "artifacts", "prefix": "pretrain"},
    "deadline_seconds": 86400,
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init(tmp_path_factory.mktemp("costs") / "infra")


def with_h100(config: dict[str, Any], **pool: Any) -> dict[str, Any]:
    config["meshstack:clusters"][0]["node_pools"].append(
        {
            "name": "h100",
            "accelerator": "h100",
            "accelerators_per_node": 8,
            "min_nodes": 0,
            "max_nodes": 2,
            "zone": "use1-az4",
            **pool,
        }
    )
    config["meshstack:network"]["zones"] = ["use1-az1", "use1-az4"]
    config["meshstack:budget"] = {"max_accelerators": 18, "max_hourly_usd": 300}
    return config


def preview_json(project: Path, stack: str, *extra: str) -> dict[str, Any]:
    done = meshstack("preview", "-s", stack, "--json", *extra, cwd=project)
    assert done.returncode == 0, done.stderr + done.stdout[-2000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.mark.slow
def test_a_capacity_block_is_prepaid_at_every_level(project: Path) -> None:
    config = with_h100(read_config(project), market="capacity-block", reservation_id="cr-0123456789abcdef0")
    config["meshstack:clusters"][0]["node_pools"][-1].update(reserved_nodes=2)
    write_config(project, config, stack="block")
    cost = preview_json(project, "block")["cost"]
    [block] = [i for i in cost["items"] if i["name"].endswith("-h100")]
    rate = 2 * load_catalog().instance_types["p5.48xlarge"].capacity_block_price_per_hour
    for level in ("idle_hourly_usd", "hourly_usd", "running_hourly_usd", "peak_hourly_usd"):
        assert block[level] == pytest.approx(rate, rel=0.01), level
    assert cost["idle_hourly_usd"] > rate, "a stack idles on its prepaid block too"
    assert block["idle_monthly_kwh"] == 0, "an unused block's instances draw no power"


@pytest.mark.slow
def test_a_training_run_is_priced_per_run_and_a_month_counts_it_once(project: Path) -> None:
    config = with_h100(read_config(project))
    config["meshstack:workloads"] = [PRETRAIN]
    write_config(project, config, stack="train")
    report = preview_json(project, "train")
    [run] = report["training_runs"]
    node = load_catalog().instance_types["p5.48xlarge"].price_per_hour
    assert run["nodes"] == 2 and run["cost_usd"] == pytest.approx(2 * node * run["hours"], abs=2 * node * 0.005)
    cost = report["cost"]
    assert cost["running_hourly_usd"] > cost["idle_hourly_usd"] + 2 * node - 0.01, "while it runs: both nodes"
    rest = 730 - run["hours"]
    assert cost["running_monthly_usd"] == pytest.approx(
        cost["running_hourly_usd"] * 730 - 2 * node * rest, abs=2 * node * 0.01
    )
    assert cost["running_monthly_usd"] < 0.1 * cost["running_hourly_usd"] * 730, "not 730 hours of a short run"
    assert cost["energy"]["running_monthly_kwh"] < cost["energy"]["monthly_kwh"] + 2 * 10 * run["hours"]

    comment = meshstack("preview", "-s", "train", "--markdown", cwd=project).stdout.splitlines()
    headline = (
        f"running its workloads ${cost['running_hourly_usd']:,.2f}/hour · ${cost['running_monthly_usd']:,.2f}/month"
    )
    assert headline in comment[3], "the comment's headline is the running figure"
    assert any(line.startswith("- pretrain:") and line.endswith(" per run") for line in comment)

    config["meshstack:budget"]["max_run_usd"] = round(run["cost_usd"] / 2, 2)
    write_config(project, config, stack="capped")
    done = meshstack("validate", "-s", "capped", cwd=project)
    assert done.returncode == 2
    assert f"budget.max_run_usd: 'pretrain' costs about ${run['cost_usd']:,.0f}" in done.stderr
    assert "over the budget's" in done.stderr and "per run" in done.stderr
    config["meshstack:budget"]["max_run_usd"] = round(run["cost_usd"] * 2, 2)
    write_config(project, config, stack="capped")
    assert preview_json(project, "capped")["cost"]["max_run_usd"] == config["meshstack:budget"]["max_run_usd"]


@pytest.mark.slow
def test_a_region_is_priced_at_its_own_prices_and_a_missing_one_is_said(project: Path) -> None:
    config = read_config(project)
    config["aws:region"] = "us-west-2"
    config["meshstack:clusters"][0]["node_pools"].append(
        {"name": "one", "accelerator": "h100", "instance_type": "p5.4xlarge", "min_nodes": 0, "max_nodes": 1}
    )
    config["meshstack:budget"]["max_accelerators"] = 3
    write_config(project, config, stack="west")
    cost = preview_json(project, "west")["cost"]
    west = load_catalog().regional_prices["us-west-2"]
    assert cost["price_basis"] == "us-west-2 prices" and "@ 001367d2" in cost["price_source"]
    [gpu] = [i for i in cost["items"] if i["name"].endswith("-gpu")]
    disk = 200 * 0.08 / 730
    assert gpu["peak_hourly_usd"] == pytest.approx(2 * (west.spot["g6.xlarge"] + disk), rel=1e-3)
    assert "p5.4xlarge: the catalog has no us-west-2 price; priced at us-east-1's list price" in cost["assumptions"]


def test_a_type_without_a_price_is_refused_until_an_override_gives_one(tmp_path: Path) -> None:
    project = init(tmp_path / "infra-gcp", "gcp")
    config = read_config(project)
    config["meshstack:clusters"][0]["node_pools"].append(
        {"name": "b200", "accelerator": "b200", "instance_type": "a4-highgpu-8g", "min_nodes": 0, "max_nodes": 1}
    )
    config["meshstack:budget"]["max_accelerators"] = 10
    write_config(project, config)
    done = meshstack("validate", "-s", "dev", cwd=project)
    assert done.returncode == 2 and "a4-highgpu-8g has no price in the catalog" in done.stderr
    override = tmp_path / "prices.yaml"
    override.write_text(yaml.safe_dump({"cloud": "gcp", "instance_types": {"a4-highgpu-8g": {"price_per_hour": 90.0}}}))
    priced = meshstack("validate", "-s", "dev", cwd=project, env_extra={"MESHSTACK_CATALOG": str(override)})
    assert priced.returncode == 0, priced.stderr
