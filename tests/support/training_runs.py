"""What the multi-process training tests share: a small job on the shipped corpus and how to read
its events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshstack.core.contract import JobConfig
from meshstack.workloads.jax.data import ensure_corpus
from meshstack.workloads.local import ProcessGroup, TrainResult

STEPS, EVERY = 24, 8
# Steps of about 0.2 s on a 2-core machine. With millisecond steps a job can outrun what the tests
# do to it: JAX's SIGTERM notifier looks for the signal once a second, and a background save
# (a few tenths of a second) would be final only after the next one began.
MODEL = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024}


def job(root: Path, name: str, **train: Any) -> JobConfig:
    config = JobConfig(
        name=name,
        data_uri=(root / "data").as_uri(),
        checkpoint_uri=(root / name).as_uri(),
        mesh={"data": 2},
        model=MODEL,
        train={"steps": STEPS, "global_batch": 8, "checkpoint_every": EVERY, "log_every": 1, **train},
    )
    ensure_corpus(config.data_uri)
    return config


def losses(result: TrainResult) -> dict[int, float]:
    """The last loss seen for each step (a resumed run may log a step twice)."""
    return {e["step"]: e["loss"] for e in result.events if e.get("event") == "step"}


def quiet(event: dict[str, Any], group: ProcessGroup, attempt: int) -> None:
    return None
