"""`meshstack run --local`: trains the dev stack's job as local processes, serves it, and stops on Ctrl-C."""

from __future__ import annotations

import http.client
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meshstack.cli import main
from meshstack.core.stack_file import PROJECT_ROOT
from meshstack.workloads.local import free_port
from tests.conftest import stack_config
from tests.support.processes import stray_processes


@pytest.mark.slow
def test_run_local_trains_serves_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meshstack.cli",
            "run",
            "--stack",
            "dev",
            "--local",
            "--steps",
            "6",
            "--port",
            str(port),
            "--workdir",
            str(tmp_path),
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    seen = []
    deadline = time.monotonic() + 300
    try:
        while not any("serving on" in line for line in seen):
            seen.append(lines.get(timeout=max(deadline - time.monotonic(), 1)))
        assert any(line.startswith("tiny: 2 processes") for line in seen)
        assert any("tiny: step 6/6" in line for line in seen)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        body = json.dumps({"model": "tiny-chat", "prompt": "The", "max_tokens": 4})
        conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert proc.returncode == 130
    assert "meshstack: interrupted" in proc.stderr.read()  # type: ignore[union-attr]
    assert stray_processes(tmp_path) == []
    assert (tmp_path / "buckets" / "artifacts" / "checkpoints" / "tiny" / "6").is_dir()


def test_run_needs_the_local_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--stack", "dev"]) == 4
    assert "only --local runs from here" in capsys.readouterr().err


def test_run_on_a_stack_without_workloads(
    capsys: pytest.CaptureFixture[str], project_copy: Callable[[str, dict[str, Any]], Path]
) -> None:
    config = stack_config("dev")
    del config["meshstack:workloads"]
    root = project_copy("dev", config)
    assert main(["--project", str(root), "run", "--stack", "dev", "--local"]) == 4
    assert "declares no workloads" in capsys.readouterr().err


def test_local_job_keeps_the_spec_or_rescales_to_the_cap(tmp_path: Path) -> None:
    from meshstack.core.stack_file import load_stack
    from meshstack.workloads.local import LocalRunError, local_training

    dev = load_stack("dev")
    job, processes, devices = local_training(dev, dev.workloads[0], tmp_path, max_processes=2)
    assert (processes, devices, job.mesh.data) == (2, 1, 2)
    assert job.data_uri == (tmp_path / "buckets" / "artifacts" / "tokens").resolve().as_uri()
    prod = load_stack("prod-aws")
    job, processes, devices = local_training(prod, prod.workloads[0], tmp_path, max_processes=2, steps=5)
    assert (processes, devices, job.mesh.size, job.train.steps) == (2, 1, 2, 5)
    with pytest.raises(LocalRunError, match=r"cannot run on 3 local process\(es\): train.global_batch"):
        local_training(dev, dev.workloads[0].model_copy(update={"processes": 4}), tmp_path, max_processes=3)
