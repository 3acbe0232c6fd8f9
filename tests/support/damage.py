"""What a disk, a network copy or a person does to a file, for the tests that damage checkpoints (the
trainer's own format and Hugging Face's): each changes the file in place."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import strategies as st


def truncate(path: Path, size: int) -> None:
    with path.open("r+b") as f:
        f.truncate(size)


def halve(path: Path) -> None:
    truncate(path, path.stat().st_size // 2)


def randomize(path: Path) -> None:
    """Random bytes of the file's own size (a sector written with another file's data)."""
    path.write_bytes(os.urandom(path.stat().st_size))


def flip_bit(path: Path, offset: int, bit: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 1 << bit
    path.write_bytes(bytes(raw))


def flip_drawn(data: st.DataObject, files: list[Path], label: str = "file") -> Path | None:
    """One bit flipped at an offset hypothesis draws, in a file it draws: the file, or None for an empty one."""
    target = data.draw(st.sampled_from(files), label=label)
    size = target.stat().st_size
    if size == 0:
        return None
    flip_bit(target, data.draw(st.integers(0, size - 1), label="offset"), data.draw(st.integers(0, 7), label="bit"))
    return target
