"""`meshstack plan --emit-stack`, run as a user runs it in a project `meshstack init` made: the top options of
every preset in both modes are written as stacks that validate and preview with no mandatory violation, or
are refused at emission with the reason; the emission flags reach the stack; bad arguments are refused
before the search; a bare --model-params plans a stated default shape; tensor parallelism stays inside a
node; serving meets time-to-first-token and per-token targets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from meshstack.core.sizing import PRESETS
from tests.support.cli_project import init, meshstack, read_config

TOP = 2
IMAGES = {
    "aws": "123456789012.dkr.ecr.us-east-1.amazonaws.com/meshstack:0.1.0",
    "gcp": "us-docker.pkg.dev/my-gcp-project/ml/meshstack:0.1.0",
}
GOALS = {"train": ["--tokens", "1e11", "--deadline", "14d"], "serve": ["--requests-per-s", "5"]}
ACCESS = ["--public-access-cidr", "203.0.113.0/24", "--tag", "team=research", "--tag", "cost-center=42"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init(tmp_path_factory.mktemp("emit") / "infra")


def plan_json(project: Path, *args: str) -> dict[str, Any]:
    done = meshstack("plan", *args, "--json", cwd=project)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(GOALS))
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_the_top_options_of_every_preset_emit_stacks_that_preview_clean_or_are_refused_with_the_reason(
    project: Path, preset: str, mode: str
) -> None:
    request = ["--preset", preset, "--mode", mode, *GOALS[mode]]
    options = plan_json(project, *request)["options"][:TOP]
    assert options, f"{preset} {mode}: the plan has options"
    outcomes = []
    for number, option in enumerate(options, 1):
        stack = f"{preset}-{mode}-{number}".replace(".", "-")
        emitted = meshstack(
            "plan",
            *request,
            *ACCESS,
            *("--option", str(number), "--emit-stack", stack, "--image", IMAGES[option["cloud"]]),
            *("--gcp-project", "my-gcp-project"),
            cwd=project,
        )
        if emitted.returncode != 0:
            assert emitted.returncode == 64, emitted.stderr
            [reason] = emitted.stderr.strip().splitlines()
            # refused for the option (naming it), or for the model: a shape meshstack's programs do not build
            assert reason.startswith(f"meshstack: meshstack's own workload cannot run {option['option']}: ") or (
                "is not one meshstack's trainer and server build (the Llama family only)" in reason
            ), reason
            assert not (project / f"Pulumi.{stack}.yaml").exists()
            outcomes.append("refused")
            continue
        assert meshstack("validate", "-s", stack, cwd=project).returncode == 0
        preview = meshstack("preview", "-s", stack, "--json", cwd=project)
        report = json.loads(preview.stdout)
        mandatory = [v for v in report["policy"]["violations"] if v["level"] == "mandatory"]
        assert (preview.returncode, mandatory) == (0, []), f"{stack}: {option['option']}"
        outcomes.append("previewed")
    assert outcomes


@pytest.mark.slow
def test_the_emission_flags_reach_the_stack_and_p5_training_gets_its_zone(project: Path) -> None:
    """A p5 training stack (p5 runs in only some zones) written into us-east-2 on spot, as a dev stack
    under a per-run budget."""
    args = ["--preset", "llama-2-7b", "--mode", "train", "--tokens", "1e11", "--deadline", "7d"]
    where = ["--region", "us-east-2", "--market", "spot", "--budget", "max_run_usd=40000"]
    result = plan_json(project, *args, *where)
    p5 = next(i for i, o in enumerate(result["options"], 1) if o["instance_type"] == "p5.48xlarge")
    assert all(o["region"] == "us-east-2" and o["market"] == "spot" for o in result["options"])
    assert all(o["cost_usd"] <= 40000 for o in result["options"])
    done = meshstack(
        "plan",
        *args,
        *where,
        *ACCESS,
        "--environment",
        "dev",
        "--option",
        str(p5),
        "--emit-stack",
        "p5",
        *("--image", IMAGES["aws"].replace("us-east-1", "us-east-2")),
        cwd=project,
    )
    assert done.returncode == 0, done.stderr
    config = read_config(project, "p5")
    [pool] = [p for p in config["meshstack:clusters"][0]["node_pools"] if p["name"] == "accelerators"]
    assert config["aws:region"] == "us-east-2" and config["meshstack:environment"] == "dev"
    assert pool["market"] == "spot" and pool["zone"] in config["meshstack:network"]["zones"]
    assert pool["zone"].startswith("use2-az")
    assert config["meshstack:budget"]["max_run_usd"] == 40000
    preview = meshstack("preview", "-s", "p5", "--json", cwd=project)
    assert preview.returncode == 0, preview.stdout[-3000:]
    assert json.loads(preview.stdout)["cost"]["region"] == "us-east-2"
    elsewhere = meshstack(
        "plan",
        *args,
        *where,
        *ACCESS,
        "--option",
        str(p5),
        "--emit-stack",
        "p5-elsewhere",
        "--image",
        IMAGES["aws"],
        cwd=project,
    )
    assert (
        elsewhere.returncode == 64 and "is in us-east-1's ECR; a us-east-2 stack pulls from its own" in elsewhere.stderr
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--emit-stack", "x", "--public-access-cidr", "1.2.3.0/24"], "--emit-stack needs --image"),
        (["--emit-stack", "x", "--image", "i", "--cloud", "aws"], "the cluster's API endpoint is private"),
        (["--emit-stack", "x", "--image", "i", "--deployer-cidr", "nope"], "'nope' is not a CIDR block"),
        (["--emit-stack", "x", "--image", "i", "--deployer-cidr", "10.0.0.0/8"], "options on GCP need --gcp-project"),
        (["--emit-stack", "dev", "--image", "i"], "Pulumi.dev.yaml exists"),
        (["--region", "us-west-9"], "--region us-west-9: not a region of any cloud's catalog"),
        (["--region", "us-central1", "--cloud", "aws"], "--region us-central1 is a GCP region, not one of --cloud's"),
        (["--zone", "use1-az1"], "apply to --emit-stack"),
        (
            ["--emit-stack", "x", "--image", "i", "--cloud", "aws", "--deployer-cidr", "10.0.0.0/8", "--zone", "z"],
            "--zone needs --region",
        ),
        (
            [
                "--emit-stack",
                "x",
                "--image",
                "i",
                "--deployer-cidr",
                "10.0.0.0/8",
                "--region",
                "us-east-1",
                "--zone",
                "use2-az1",
            ],
            "--zone use2-az1: not a zone id of us-east-1",
        ),
        (
            [
                "--emit-stack",
                "x",
                "--image",
                "i",
                "--cloud",
                "aws",
                "--deployer-cidr",
                "10.0.0.0/8",
                "--market",
                "capacity-block",
            ],
            "--market capacity-block needs --reservation-id",
        ),
        (["--budget", "max_daily_usd=5"], "--budget max_daily_usd=5: give KEY=VALUE with KEY one of"),
        (["--budget", "max_run_usd=-1"], "must be a positive number"),
    ],
)
def test_bad_emission_arguments_are_refused_before_the_search(project: Path, extra: list[str], message: str) -> None:
    done = meshstack(
        "plan", "--preset", "llama-2-7b", "--mode", "train", "--tokens", "1e9", "--nodes", "2", *extra, cwd=project
    )
    assert done.returncode == 64, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert done.stdout == "", "refused before the search printed anything"


def test_model_params_alone_plans_a_stated_default_shape(project: Path) -> None:
    result = plan_json(project, "--model-params", "70e9", "--mode", "serve", "--requests-per-s", "2")
    assert result["request"]["params"] == 70e9 and result["options"]
    [note] = [a for a in result["assumptions"] if a.startswith("shape: ")]
    assert "llama-3-70b's (80 layers, d_model 8192, 64 heads, 8 KV heads" in note


def test_tensor_parallelism_stays_inside_a_node(project: Path) -> None:
    """16 single-GPU nodes over Ethernet are never split by tensor parallelism; over a slow network the
    sharded state takes its time, and a deadline it cannot meet rejects the option with that reason."""
    result = plan_json(project, "--preset", "llama-2-7b", "--mode", "train", "--tokens", "1e11", "--nodes", "16")
    for option in result["options"]:
        # A TPU slice's hosts share its ICI; anything else's node is the bound.
        within = option["devices"] // (option["slices"] if option["topology"] else option["nodes"])
        assert option["layout"]["tensor"] <= within, option["option"]
    deadline = plan_json(project, "--preset", "llama-2-7b", "--mode", "train", "--tokens", "1e11", "--deadline", "3d")
    reasons = {r["option"]: r["reason"] for r in deadline["rejected"]}
    assert reasons["aws: g6e.xlarge"].startswith("network-bound: moving the sharded state between its ")
    assert any("tensor parallelism within a node only" in a for a in deadline["assumptions"])


def test_serving_meets_time_to_first_token_and_per_token_targets(project: Path) -> None:
    loose = plan_json(project, "--preset", "llama-3-8b", "--mode", "serve", "--requests-per-s", "20")
    tight = plan_json(
        project,
        "--preset",
        "llama-3-8b",
        "--mode",
        "serve",
        "--requests-per-s",
        "20",
        "--ttft",
        "200ms",
        "--tpot",
        "20ms",
    )
    for option in tight["options"]:
        assert option["layout"]["ttft_s"] <= 0.2 and option["layout"]["tpot_s"] <= 0.02, option["option"]
    assert tight["options"][0]["cost_usd"] >= loose["options"][0]["cost_usd"]
    assert any("time per output token" in r["reason"] for r in tight["rejected"])
