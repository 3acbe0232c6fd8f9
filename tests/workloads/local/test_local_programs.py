"""`meshstack run --local` on a program of the user's own, from a project outside this checkout: the
README's example finds its peers through the contract, and the failure contract holds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshstack.core.stack_file import PROJECT_ROOT

STACK = {
    "aws:region": "us-east-1",
    "meshstack:environment": "dev",
    "meshstack:tags": {"team": "ml", "project": "lab", "cost-center": "1"},
    "meshstack:clusters": [
        {
            "name": "lab",
            "kubernetes_version": "1.35",
            "public_access_cidrs": ["203.0.113.0/24"],
            "node_pools": [
                {"name": "cpu", "accelerator": "cpu", "instance_type": "m7i.xlarge", "min_nodes": 0, "max_nodes": 2}
            ],
        }
    ],
    "meshstack:storage": {"buckets": [{"name": "artifacts"}]},
}


def readme_example() -> str:
    """The example program as the README shows it: the python block after its heading."""
    text = (PROJECT_ROOT / "README.md").read_text()
    section = text.split("### A program of your own", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def project(root: Path, program: str, workload: dict[str, Any]) -> Path:
    """A user's project: the Pulumi program, one stack file, their train.py."""
    (root / "stacks").mkdir(parents=True)
    (root / "Pulumi.yaml").write_text((PROJECT_ROOT / "Pulumi.yaml").read_text())
    (root / "stacks" / "__main__.py").write_text((PROJECT_ROOT / "stacks" / "__main__.py").read_text())
    (root / "train.py").write_text(program)
    base = {
        "name": "mine",
        "kind": "training",
        "cluster": "lab",
        "node_pool": "cpu",
        "image": "registry.example.com/team/train:1",
        "command": ["python", "train.py"],
        "processes": 2,
        "checkpoints": {"bucket": "artifacts", "prefix": "mine"},
    }
    config = {**STACK, "meshstack:workloads": [{**base, **workload}]}
    (root / "stacks" / "Pulumi.lab.yaml").write_text(yaml.safe_dump({"config": config}))
    return root


def run(root: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    # `python` in the stack's command is the user's own: this venv's, first on PATH as when it is active
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, "-m", "meshstack.cli", "run", "--stack", "lab", "--local"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_the_readme_example_finds_its_peer_through_the_contract(tmp_path: Path) -> None:
    root = project(tmp_path / "proj", readme_example(), {})
    done = run(root)
    assert done.returncode == 0, done.stdout + done.stderr
    for rank in (0, 1):
        assert f"[mine/{rank}] process {rank} of 2" in done.stdout, done.stdout
    written = root / ".meshstack" / "lab" / "buckets" / "artifacts" / "mine"
    assert sorted(p.name for p in written.iterdir()) == ["rank-0.txt", "rank-1.txt"]
    assert (written / "rank-1.txt").read_text() == "[0, 1]\n", "each process saw every other's rank"


CONTRACT_PROGRAM = """
import os, sys
keys = ["JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "MESHSTACK_CHECKPOINT_URI",
        "MESHSTACK_GRACE_SECONDS", "MESHSTACK_RESTART_ATTEMPT", "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE",
        "RANK", "NODE_RANK", "PET_NNODES", "PET_NODE_RANK", "PET_NPROC_PER_NODE", "TEAM_FLAG"]
print(" ".join(f"{k}={os.environ.get(k)}" for k in keys), "argv=" + ",".join(sys.argv[1:]))
"""


def test_every_process_gets_the_contract_and_kubernetes_expansion(tmp_path: Path) -> None:
    workload = {"args": ["--out", "$(MESHSTACK_CHECKPOINT_URI)", "$$(LITERAL)"], "env": {"TEAM_FLAG": "on"}}
    root = project(tmp_path / "proj", CONTRACT_PROGRAM, workload)
    done = run(root)
    assert done.returncode == 0, done.stderr
    lines = {int(m.group(1)): m.group(2) for m in re.finditer(r"^\[mine/(\d)\] (.*)$", done.stdout, re.M)}
    uri = (root / ".meshstack" / "lab" / "buckets" / "artifacts" / "mine").resolve().as_uri()
    for rank, line in lines.items():
        seen = dict(part.split("=", 1) for part in line.split())
        assert seen["JAX_PROCESS_ID"] == seen["RANK"] == seen["NODE_RANK"] == seen["PET_NODE_RANK"] == str(rank)
        assert seen["JAX_NUM_PROCESSES"] == seen["WORLD_SIZE"] == seen["PET_NNODES"] == "2"
        assert seen["JAX_COORDINATOR_ADDRESS"].startswith("127.0.0.1:") and seen["MASTER_ADDR"] == "127.0.0.1"
        assert seen["MESHSTACK_CHECKPOINT_URI"] == uri and seen["MESHSTACK_GRACE_SECONDS"] == "120"
        assert seen["MESHSTACK_RESTART_ATTEMPT"] == "0" and seen["TEAM_FLAG"] == "on"
        assert seen["argv"] == f"--out,{uri},$(LITERAL)"
    assert sorted(lines) == [0, 1]


FAILING_PROGRAM = """
import os, sys
attempt = int(os.environ["MESHSTACK_RESTART_ATTEMPT"])
print(f"attempt {attempt}", flush=True)
sys.exit(int(os.environ["EXITS"].split(",")[min(attempt, 2)]))
"""


@pytest.mark.parametrize(
    ("exits", "status", "said"),
    [
        ("143,0,0", 0, "preempted (exit 143 on every process); restarting the group, not counted"),
        ("2,0,0", 2, "exited 2 (a configuration error): not retried"),
        ("3,3,3", 3, "failed 2 times (exit status 3)"),
    ],
)
def test_the_failure_contract_holds_for_any_program(tmp_path: Path, exits: str, status: int, said: str) -> None:
    root = project(tmp_path / "proj", FAILING_PROGRAM, {"env": {"EXITS": exits}, "max_restarts": 1})
    done = run(root)
    assert done.returncode == status, done.stdout + done.stderr
    assert said in done.stdout + done.stderr
    assert done.stderr.count("\n") <= 1 and "Traceback" not in done.stderr


def test_a_command_that_is_not_there_is_one_line(tmp_path: Path) -> None:
    root = project(tmp_path / "proj", "", {"command": ["no-such-program-here"]})
    done = run(root)
    assert done.returncode == 127
    assert done.stderr.strip() == (
        "meshstack: training workload 'mine' could not start no-such-program-here: No such file or directory"
    )


@pytest.mark.parametrize(
    ("workload", "line"),
    [
        ({"command": []}, "workloads[0].command: must be a non-empty list of non-empty strings"),
        ({"env": {"RANK": "3"}}, "workloads[0].env.RANK: RANK is part of meshstack's environment contract"),
        ({"metrics_port": 1234}, "workloads[0].metrics_port: 1234 is also coordinator_port"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_runs(tmp_path: Path, workload: dict[str, Any], line: str) -> None:
    root = project(tmp_path / "proj", "raise SystemExit('must not run')", workload)
    done = run(root)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"meshstack: Pulumi.lab.yaml: {line}") and done.stderr.count("\n") == 1
    assert not (root / ".meshstack").exists(), "nothing was started or written"


def test_processes_started_after_a_preview_print_no_grpc_noise(tmp_path: Path) -> None:
    """The demo previews (the SDK's gRPC threads running) and then starts processes: gRPC logged an INFO
    line about fork() for each, until the CLI set its verbosity before anything imports gRPC."""
    forks = (
        "import concurrent.futures, subprocess, grpc\n"
        "server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))\n"
        "server.add_insecure_port('127.0.0.1:0'); server.start()\n"
        "subprocess.run(['true'], preexec_fn=lambda: None)\n"
        "server.stop(0)\n"
    )
    through_cli = (
        "import contextlib, io\nfrom meshstack.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()): main(['schema'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"}
    for prefix, noisy in (("", True), (through_cli, False)):
        script = tmp_path / "forks.py"
        script.write_text(prefix + forks)
        done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert ("fork" in done.stderr) is noisy, done.stderr
