"""Folders meshstack writes in: it clears only what it made, and says so with a marker file.

A folder the user already filled is refused, never emptied: `demo --out ~/Documents` must not
cost anyone their documents.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from meshstack.core.errors import UsageError

MARKER = ".meshstack-owned"
MARKER_TEXT = "meshstack made this folder and may clear it. Remove this file to keep meshstack out.\n"


def _no_file_in_the_way(path: Path, option: str) -> None:
    for parent in (path, *path.parents):
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"{option} {path}: {parent} is a file, not a folder")


def writable_folder(path: Path, option: str) -> Path:
    """A folder meshstack may add files to (it deletes nothing there): no file in the way."""
    _no_file_in_the_way(path, option)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot write there ({exc.strerror})") from None
    return path


def claim(path: Path, option: str) -> Path:
    """`path` as a folder meshstack owns: made now (and marked), or marked by an earlier run.
    A file in the way, or a non-empty folder without the marker, is refused."""
    _no_file_in_the_way(path, option)
    if path.is_dir() and not (path / MARKER).exists() and any(path.iterdir()):
        raise UsageError(
            f"{option} {path}: the folder holds files meshstack did not write; choose a new or empty folder"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        (path / MARKER).write_text(MARKER_TEXT)
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot write there ({exc.strerror})") from None
    return path


def clear(path: Path, option: str) -> Path:
    """An empty folder meshstack owns at `path`, keeping its marker."""
    claim(path, option)
    for child in path.iterdir():
        if child.name == MARKER:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    return path
