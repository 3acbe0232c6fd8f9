"""Print the requirements of CI's lowest-SDK run, one a line: the lowest Pulumi SDK minor that
pyproject.toml's pin admits (its newest patch), and the dev extra's pytest and pytest-xdist (the
suite's options run it on two workers).

The pin's lower bound is the one place that says which SDK meshstack supports at the bottom (the
preview drives private SDK APIs, so every admitted minor must pass): CI reads it from there rather
than naming a version of its own.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
_LOWER = re.compile(r"^pulumi\s*>=\s*(\d+\.\d+)(?:\.\d+)?\s*(?:,|$)")


def requirements(pyproject: Path = PYPROJECT) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    lower = [m.group(1) for d in project["dependencies"] if (m := _LOWER.match(d))]
    if len(lower) != 1:
        raise SystemExit(f"{pyproject}: no single `pulumi>=X.Y,...` dependency to take the lowest SDK from")
    pytest = [d for d in project["optional-dependencies"]["dev"] if re.match(r"^pytest(-xdist)?\b(?![-_])", d)]
    return [f"pulumi=={lower[0]}.*", *pytest]


if __name__ == "__main__":
    sys.stdout.write("".join(f"{r}\n" for r in requirements()))
