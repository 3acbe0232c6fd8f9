"""A project as a user starts one, `meshstack init` in a folder outside this checkout, and meshstack run on
it the way a user runs it: as a subprocess, from the project's folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from meshstack.core.stack_file import PROJECT_ROOT


def meshstack(
    *args: str, cwd: Path, timeout: float = 300, env_extra: dict[str, str] | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """`meshstack ARGS` in `cwd`, importing this checkout's code and nothing of the caller's environment."""
    env = {"PYTHONPATH": str(PROJECT_ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd)}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "meshstack.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kwargs,
    )


def init(folder: Path, cloud: str = "aws") -> Path:
    done = meshstack("init", str(folder), "--cloud", cloud, cwd=folder.parent)
    assert done.returncode == 0, done.stderr
    return folder


def stack_file(project: Path, stack: str = "dev") -> Path:
    return project / f"Pulumi.{stack}.yaml"


def read_config(project: Path, stack: str = "dev") -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(stack_file(project, stack).read_text())["config"]
    return config


def write_config(project: Path, config: dict[str, Any], stack: str = "dev") -> Path:
    path = stack_file(project, stack)
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    return path
