"""bench/serve_overhead.py runs end to end and prints the figures the README quotes (no timing is
asserted: a shared machine's numbers are the benchmark's to report, not a test's to judge)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from meshstack.core.stack_file import PROJECT_ROOT

KEYS = {"server_tokens_per_s", "engine_tokens_per_s", "server_over_engine", "p99_gap_over_step", "multi_token_chunks"}


@pytest.mark.slow
def test_the_overhead_benchmark_prints_its_figures_as_json() -> None:
    command = [sys.executable, str(PROJECT_ROOT / "bench" / "serve_overhead.py"), "--json"]
    tiny = ["--max-tokens", "4", "--rounds", "1", "--train-steps", "2", "--budget-s", "20"]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run([*command, *tiny], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures.keys() >= KEYS, figures
    assert figures["server_tokens_per_s"] > 0 and figures["engine_tokens_per_s"] > 0
