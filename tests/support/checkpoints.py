"""The small training job the checkpoint tests write, damage and resume from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshstack.core.contract import JobConfig
from meshstack.workloads.jax.data import ensure_corpus


def job(tmp_path: Path, steps: int, **train: Any) -> JobConfig:
    data = (tmp_path / "data").as_uri()
    ensure_corpus(data)
    settings = {"steps": steps, "global_batch": 4, "checkpoint_every": 2, "keep_checkpoints": 5, **train}
    return JobConfig(name="c", data_uri=data, checkpoint_uri=(tmp_path / "ckpt").as_uri(), train=settings)
