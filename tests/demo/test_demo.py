"""The embedded demo end to end, its report in a real browser, and its failures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meshstack.core.stack_file import PROJECT_ROOT
from meshstack.demo import DemoError, run_demo
from tests.conftest import stack_config
from tests.support.processes import stray_processes

PNG = b"\x89PNG\r\n\x1a\n"
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("demo") / "report"
    done = subprocess.run(
        [sys.executable, "-m", "meshstack.cli", "demo", "--out", str(out), "--steps", "40"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return done, out


@pytest.mark.slow
def test_demo_runs_every_step_and_exits_0(demo: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    done, _ = demo
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for heading in (
        "== 1. Validate and preview stack 'dev' offline",
        "== 2. Train its workloads",
        "== 3. Ask the served model",
        "== 4. Write the report",
    ):
        assert heading in out
    assert "98 resources; cost running its workloads $1.26/hour ($315.06/month, each training run once)" in out
    assert "idle $0.30/hour, as declared $0.30/hour" in out and "policy: 0 mandatory" in out
    assert "tiny: 2 processes, 2 devices (cpu)" in out and "tiny: step 40/40  loss" in out
    assert out.count("-> ") == 4 and " tokens in " in out and ", first " in out
    assert "nothing is left running" in out
    assert stray_processes(demo[1]) == []


@pytest.mark.slow
def test_demo_writes_every_artifact(demo: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, out = demo
    preview = json.loads((out / "preview.json").read_text())
    assert preview["stack"] == "dev" and preview["policy"]["violations"] == []
    assert preview["cost"]["hourly_usd"] == pytest.approx(0.3010, abs=1e-3)
    assert (out / "preview.md").read_text().startswith("<!-- meshstack-preview:dev -->\n## meshstack preview: `dev`")
    for picture in ("topology.png", "cost.png", "training.png", "serving.png"):
        data = (out / picture).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, picture
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4, "the page is self-contained"
    assert 'id="cost-total">$0.30/hour<' in page and 'id="violations-count">0<' in page
    assert 'id="cost-running">$1.26/hour<' in page, "the GPU pool idles at 0 but training takes 2 nodes"
    assert 'id="energy-running">' in page and "kgCO2e" in page


@pytest.fixture(scope="session")
def chromium() -> str:
    """Chromium from the distribution's packages, installed here when missing and possible."""
    path = shutil.which("chromium")
    if path is None and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=900, check=False)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "chromium"],
            capture_output=True,
            timeout=1800,
            check=False,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        path = shutil.which("chromium")
    if path is None:
        pytest.skip("Chromium is not installed and cannot be installed here (needs root and apt-get)")
    return path


def browse(chromium: str, page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM after load, and what the page wrote to the console."""
    done = subprocess.run(
        [chromium, *BROWSER_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    return done.stdout, console


@pytest.mark.slow
def test_report_loads_in_a_browser_without_errors(
    demo: tuple[subprocess.CompletedProcess[str], Path], chromium: str, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>console.error('boom'); missing();</script></body></html>")
    _, console = browse(chromium, broken, tmp_path / "profile-a")
    assert any("boom" in line for line in console), "the console check sees errors when there are some"
    dom, console = browse(chromium, demo[1] / "report.html", tmp_path / "profile-b")
    assert console == []
    assert 'id="cost-total">$0.30/hour</div>' in dom
    assert 'id="violations-count">0</div>' in dom
    assert dom.count("<img") == 4


def in_project(
    monkeypatch: pytest.MonkeyPatch, project_copy: Callable[[str, dict[str, Any]], Path], config: dict[str, Any]
) -> None:
    root = project_copy("dev", config)
    monkeypatch.chdir(root)


def test_a_bad_spec_stops_the_demo_at_step_1(
    monkeypatch: pytest.MonkeyPatch, project_copy: Callable[[str, dict[str, Any]], Path], tmp_path: Path
) -> None:
    config = stack_config("dev")
    config["meshstack:clusters"][0]["node_pools"][1]["accelerator"] = "h900"
    in_project(monkeypatch, project_copy, config)
    with pytest.raises(DemoError) as info:
        run_demo(tmp_path / "out", steps=2)
    message = str(info.value)
    assert message.startswith("step 1 (Validate and preview stack 'dev' offline) failed: ")
    assert "clusters[0].node_pools[1].accelerator" in message and "Fix the stack file" in message


@pytest.mark.slow
def test_a_server_that_cannot_start_fails_step_2_and_leaves_nothing_running(
    monkeypatch: pytest.MonkeyPatch, project_copy: Callable[[str, dict[str, Any]], Path], tmp_path: Path
) -> None:
    config = stack_config("dev")
    config["meshstack:workloads"][1]["model"] = {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 256,
        "max_position_embeddings": 128,
    }
    in_project(monkeypatch, project_copy, config)
    with pytest.raises(DemoError) as info:
        run_demo(tmp_path / "out", steps=2)
    message = str(info.value)
    assert "step 2 (Train its workloads on this machine" in message
    assert "inference server 'tiny-chat' did not start" in message and "log is in" in message
    assert stray_processes(tmp_path) == []
