"""The README's quick start, run as written in a folder outside this checkout: every line but the ones
that need the network (installing the release, GitHub), so what it promises is what meshstack does."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from meshstack.core.stack_file import PROJECT_ROOT

NETWORK = ("pip install", "gh ", "git push")


def quick_start() -> list[str]:
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("### Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the quick start has no bash block"
    return block.group(1).splitlines()


def test_the_quick_start_is_twenty_lines_at_most() -> None:
    assert len(quick_start()) <= 20


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_quick_start_runs_as_written(tmp_path: Path) -> None:
    wrapper = tmp_path / "meshstack"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={PROJECT_ROOT} exec {sys.executable} -m meshstack.cli "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    lines = []
    for line in quick_start():
        if line.startswith("#"):
            continue
        commands = [c for c in line.split(" && ") if not any(c.lstrip().startswith(n) or n in c for n in NETWORK)]
        # The venv is the one this test runs in; init finds the folder as pip would leave it.
        commands = ["mkdir -p .venv/bin" if c.startswith("python3 -m venv") else c for c in commands]
        if commands:
            lines.append(" && ".join(commands).replace(".venv/bin/meshstack", str(wrapper)))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(lines)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dev: valid" in done.stdout and "Policy: 0 mandatory" in done.stdout
    promised = re.search(r"--baseline \S+ +# (\+\$[\d.]+/hour)", "\n".join(quick_start()))
    assert promised and f"Change against dev: {promised.group(1)}" in done.stdout, done.stdout
