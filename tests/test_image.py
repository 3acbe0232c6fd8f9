"""The Dockerfile of meshstack's own image: it cannot be built here (no Docker engine), so its properties
are read from it: a pinned base, a non-root user, the extras it installs, the commands the pods run."""

from __future__ import annotations

import importlib.util
import re
import tomllib

from meshstack.core.contract import SERVER_COMMAND, TRAINER_COMMAND
from meshstack.core.stack_file import PROJECT_ROOT
from meshstack.workloads.k8s.pod import RUN_AS_USER

DOCKERFILE = PROJECT_ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    return [tuple(line.split(maxsplit=1)) for line in lines if line and not line.startswith("#")]  # type: ignore[misc]


def build_args() -> dict[str, str]:
    return dict(arg.split("=", 1) for op, arg in instructions() if op == "ARG" and "=" in arg)


def test_the_base_image_is_pinned() -> None:
    [base] = [arg for op, arg in instructions() if op == "FROM"]
    image = base.replace("${PYTHON_IMAGE}", build_args()["PYTHON_IMAGE"])
    tag = image.partition(":")[2]
    assert "@sha256:" in image or re.fullmatch(r"\d+\.\d+\.\d+[-\w.]*", tag), f"{image} is not pinned"
    assert tag.split("-")[0] == "3.11.7", "the Python the suite runs on"


def test_it_runs_as_the_user_the_pods_run_as() -> None:
    users = [arg for op, arg in instructions() if op == "USER"]
    assert users and users[-1] == str(RUN_AS_USER) != "0"
    assert f"--uid {RUN_AS_USER}" in DOCKERFILE.read_text()


def test_it_installs_extras_the_project_declares() -> None:
    extras = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    [install] = [arg for op, arg in instructions() if op == "RUN" and "pip install" in arg]
    named = re.search(r'"\.\[([^\]]+)\]"', install).group(1)  # type: ignore[union-attr]
    for extra in named.split(","):
        extra = extra.replace("${JAX_EXTRA}", build_args()["JAX_EXTRA"])
        assert extra in extras, f"pyproject.toml has no extra '{extra}'"
    assert {"cpu", "cuda12", "tpu"} <= set(extras)


def test_the_commands_meshstack_renders_exist_in_the_package() -> None:
    copied = {arg.split()[0] for op, arg in instructions() if op == "COPY"}
    for command in (TRAINER_COMMAND, SERVER_COMMAND):
        assert command[:2] == ("python", "-m")
        module = command[2]
        assert importlib.util.find_spec(module) is not None, module
        assert module.split(".")[0] in copied, f"{module} is not copied into the image"
    [cmd] = [arg for op, arg in instructions() if op == "CMD"]
    assert cmd == '["python", "-m", "meshstack.workloads.jax.train"]'
