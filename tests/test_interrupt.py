"""Ctrl-C during a preview: one line and exit 130, never the Pulumi SDK's pending tasks unwinding."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meshstack.core.stack_file import PROJECT_ROOT
from tests.cli_project import init, read_config, write_config


@pytest.mark.slow
@pytest.mark.parametrize(
    "after_s",
    [
        pytest.param(
            1.0,
            marks=pytest.mark.xfail(
                reason="open (#27): after the merge of the serving and policy work, a SIGINT 1 s in can land after "
                "the preview has printed its tree; the 4 s case holds",
                strict=False,
            ),
        ),
        4.0,
    ],
)
def test_ctrl_c_during_preview_prints_one_line_and_exits_130(tmp_path: Path, after_s: float) -> None:
    project = init(tmp_path / "infra")
    config = read_config(project)
    [cluster] = config["meshstack:clusters"]
    # Six clusters: a preview that runs well past the signal on an idle machine as on a busy one.
    config["meshstack:clusters"] = [{**cluster, "name": f"c{i}"} for i in range(6)]
    config.pop("meshstack:budget")
    write_config(project, config)
    env = {"PYTHONPATH": str(PROJECT_ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    running = subprocess.Popen(
        [sys.executable, "-m", "meshstack.cli", "preview", "-s", "dev"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(after_s)  # at 1 s it is still importing the providers; at 4 s it runs the program
    assert running.poll() is None, "still running when the signal is sent"
    running.send_signal(signal.SIGINT)
    out, err = running.communicate(timeout=60)
    assert running.returncode == 130, err
    assert err == "meshstack: interrupted\n"
    assert out == ""
