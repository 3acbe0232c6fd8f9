"""`meshstack plan` through the CLI, as a user runs it: the ranked table, JSON, the reasons for every
rejection, a stack file it writes that validates and previews clean, and clear refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from meshstack.core.sizing import PRESETS
from meshstack.core.stack_file import PROJECT_ROOT
from meshstack.planner.options import PlanRequest
from meshstack.planner.search import plan

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/meshstack:0.1.0"
EMIT = (
    *("plan", "--preset", "llama-2-7b", "--mode", "train", "--tokens", "1e11", "--deadline", "7d"),
    *("--cloud", "aws", "--emit-stack", "ft7b", "--image", IMAGE, "--deployer-cidr", "10.8.0.0/16"),
)


def meshstack(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshstack.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin"},
    )


def test_the_70b_question_gets_ranked_options_and_reasons() -> None:
    """Fine-tune a 70B model in bf16 on 2T tokens within two weeks: what to build, and what it costs."""
    done = meshstack(
        "plan", "--preset", "llama-2-70b", "--mode", "train", "--tokens", "2e12", "--deadline", "14d", "--json"
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    options = result["options"]
    assert options and all(o["hours"] <= 14 * 24 * 1.001 for o in options), "every option meets the deadline"
    assert [o["cost_usd"] for o in options] == sorted(o["cost_usd"] for o in options), "cheapest first"
    assert {o["cloud"] for o in options} == {"aws", "gcp"}, "both clouds' catalogs are searched"
    for o in options:
        assert o["memory_headroom"] >= 0 and o["kwh"] > 0 and o["kg_co2e"] > 0
    reasons = {r["option"]: r["reason"] for r in result["rejected"]}
    assert reasons["gcp: 1x1 tpu-v5e slice"].startswith("does not fit: 1039 GiB per device")
    assert "to meet the deadline" in reasons["aws: g5.xlarge"]
    assert any("MFU 40%" in a for a in result["assumptions"])


def test_serving_at_50_requests_per_second_in_int8() -> None:
    done = meshstack(
        "plan", "--preset", "llama-2-70b", "--mode", "serve", "--requests-per-s", "50", "--quantization", "int8"
    )
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[2]
    assert "replicas x" in first and "$" in first
    assert "Rejected (" in done.stdout and "p99" in done.stdout


def test_fp8_is_only_planned_where_the_accelerator_has_it() -> None:
    result = plan(PlanRequest(PRESETS["llama-2-7b"], "train", "fp8", tokens=1e10, nodes=1))
    assert {o.accelerator for o in result.options} <= {"h100", "h200", "b200", "l40s", "l4", "trainium2"}
    assert any(r.reason == "a100 has no fp8 rate" for r in result.rejected)


@pytest.mark.slow
def test_an_emitted_stack_validates_and_previews_clean(tmp_path: Path) -> None:
    (tmp_path / "stacks").mkdir()
    (tmp_path / "Pulumi.yaml").write_text((PROJECT_ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "stacks" / "__main__.py").write_text((PROJECT_ROOT / "stacks" / "__main__.py").read_text())
    args = ("--project", str(tmp_path))
    done = meshstack(*args, *EMIT, "--tag", "team=research", "--tag", "cost-center=42")
    assert done.returncode == 0, done.stderr
    written = tmp_path / "stacks" / "Pulumi.ft7b.yaml"
    assert f"wrote {written}" in done.stderr
    assert written.read_text().startswith("# Written by `meshstack plan` for option 1: aws: ")
    assert meshstack(*args, "validate", "--stack", "ft7b").returncode == 0
    preview = meshstack(*args, "preview", "--stack", "ft7b", "--json")
    assert preview.returncode == 0, preview.stderr
    report = json.loads(preview.stdout)
    assert report["policy"]["violations"] == []
    assert report["cost"]["energy"]["running_monthly_kwh"] > 0
    again = meshstack(*args, *EMIT, "--tag", "team=r", "--tag", "cost-center=1")
    assert again.returncode == 64 and "exists: choose another --emit-stack name" in again.stderr, "never overwritten"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "train", "--tokens", "1e9", "--deadline", "1d"], "give --preset"),
        (["--preset", "llama-2-7b", "--mode", "train", "--deadline", "1d"], "--mode train needs --tokens"),
        (
            ["--preset", "llama-2-7b", "--mode", "train", "--tokens", "1e9"],
            "one of --deadline (for example 14d) or --nodes",
        ),
        (
            ["--preset", "llama-2-7b", "--mode", "train", "--tokens", "1e9", "--deadline", "soon"],
            "--deadline: 'soon' is not a duration",
        ),
        (["--preset", "llama-2-7b", "--mode", "train", "--tokens", "-5", "--nodes", "2"], "--tokens: must be positive"),
        (
            ["--preset", "llama-2-7b", "--mode", "train", "--tokens", "1e9", "--nodes", "2", "--mfu", "1.5"],
            "--mfu: a utilisation is at most 1",
        ),
        (["--preset", "llama-2-7b", "--mode", "serve"], "--mode serve needs --requests-per-s"),
        (
            ["--layers", "4", "--d-model", "100", "--heads", "3", "--mode", "serve", "--requests-per-s", "1"],
            "--d-model 100 is not divisible by --heads 3",
        ),
        (
            ["--preset", "llama-2-7b", "--mode", "train", "--tokens", "1e9", "--nodes", "2", "--emit-stack", "x"],
            "--emit-stack needs --image",
        ),
        (
            [
                *("--preset", "llama-2-7b", "--mode", "train", "--tokens", "1e9", "--nodes", "2"),
                *("--cloud", "aws", "--emit-stack", "x", "--image", "i"),
            ],
            "the cluster's API endpoint is private: give --deployer-cidr",
        ),
        (
            [
                "--preset",
                "llama-2-7b",
                "--mode",
                "train",
                "--tokens",
                "1e9",
                "--nodes",
                "2",
                "--emit-stack",
                "x",
                "--image",
                "i",
                "--option",
                "99",
                "--cloud",
                "aws",
                "--deployer-cidr",
                "10.8.0.0/16",
            ],
            "--option 99: the plan has",
        ),
    ],
)
def test_bad_arguments_exit_64_with_one_line(args: list[str], message: str) -> None:
    done = meshstack("plan", *args)
    assert done.returncode == 64, (done.returncode, done.stderr)
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_70b_serving_stack_is_emitted_as_vllm_at_tensor_parallel_and_previews_clean(tmp_path: Path) -> None:
    (tmp_path / "stacks").mkdir()
    (tmp_path / "Pulumi.yaml").write_text((PROJECT_ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "stacks" / "__main__.py").write_text((PROJECT_ROOT / "stacks" / "__main__.py").read_text())
    args = ("--project", str(tmp_path))
    done = meshstack(
        *args,
        *("plan", "--preset", "llama-2-70b", "--mode", "serve", "--requests-per-s", "5", "--cloud", "aws"),
        *("--emit-stack", "chat70b", "--option", "4", "--image", IMAGE, "--deployer-cidr", "10.8.0.0/16"),
        *("--tag", "team=research", "--tag", "cost-center=42"),
    )
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load((tmp_path / "stacks" / "Pulumi.chat70b.yaml").read_text())["config"]
    [service] = config["meshstack:workloads"]
    assert service["engine"] == "vllm" and service["devices_per_replica"] == 8, "g6e.48xlarge: 8 x L40S"
    assert service["image"] == "123456789012.dkr.ecr.us-east-1.amazonaws.com/vllm/vllm-openai:v0.34.0"
    preview = meshstack(*args, "preview", "--stack", "chat70b", "--json")
    assert preview.returncode == 0, preview.stderr
    report = json.loads(preview.stdout)
    assert report["policy"]["violations"] == []
    deployment = next(r for r in report["resources"] if r["type"] == "kubernetes:apps/v1:Deployment")
    args_ = deployment["inputs"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args_[args_.index("--tensor-parallel-size") + 1] == str(service["devices_per_replica"])
