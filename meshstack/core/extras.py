"""meshstack's extras: which of an extra's distributions this install lacks.

A CI machine that only validates, previews and checks policy installs `meshstack` alone; JAX and the
rest of what trains and serves models come with `meshstack[workloads]`, and the demo's charts with
`meshstack[demo]`. The commands that need one check it before they start, so a slim install answers
with one line naming the extra instead of an ImportError halfway through. The extras' contents are
read from meshstack's own installed metadata (pyproject.toml's optional-dependencies), so no package
list is kept twice.
"""

from __future__ import annotations

import re
from importlib import metadata

from meshstack.core.errors import ExtraMissingError

DISTRIBUTION = "meshstack"

# `name[extra, ...] <version>; extra == "x"`, as Requires-Dist writes a requirement of an extra.
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")
_EXTRA = re.compile(r"""\bextra\s*==\s*["']([^"']+)["']""")


def _requires(extra: str) -> list[tuple[str, tuple[str, ...]]]:
    """(distribution, its extras) for each requirement the extra adds, meshstack's own extras included."""
    out = []
    for line in metadata.requires(DISTRIBUTION) or ():
        requirement, _, marker = line.partition(";")
        named = _EXTRA.search(marker)
        found = _NAME.match(requirement)
        if named is None or named.group(1) != extra or found is None:
            continue
        extras = tuple(e.strip() for e in (found.group(2) or "").split(",") if e.strip())
        out.append((found.group(1), extras))
    return out


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def missing(extra: str) -> list[str]:
    """The distributions of `extra` (and of the extras it includes) that are not installed, sorted.

    An install without meshstack's metadata (a checkout on PYTHONPATH, never installed) has nothing to
    check against: the answer is then that nothing is missing, and the imports speak for themselves.
    """
    try:
        metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return []
    absent: set[str] = set()
    seen: set[str] = set()
    todo = [extra]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for name, extras in _requires(current):
            if _normal(name) == DISTRIBUTION:
                todo.extend(extras)
                continue
            try:
                metadata.distribution(name)
            except metadata.PackageNotFoundError:
                absent.add(name)
    return sorted(absent)


def require(extra: str, command: str) -> None:
    """Refuse `command` in one line, naming the extra to install, when any of its distributions is absent."""
    absent = missing(extra)
    if absent:
        raise ExtraMissingError(
            f"`meshstack {command}` needs meshstack's {extra} extra, which this install lacks "
            f"(not installed: {', '.join(absent)}): pip install 'meshstack[{extra}]'"
        )
