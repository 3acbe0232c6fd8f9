"""Inference engines meshstack renders a server for, beside its own: their settings, flags and start-up time."""

from __future__ import annotations

import math

# How long a server takes from its container's start to answering: loading its weights at the
# rate of where they come from, plus the engine's own start (CUDA graphs, XLA compiles). Rates are
# deliberately low, for one pod on a busy node: S3 and GCS give a single client several hundred
# MB/s with concurrent ranged reads (vLLM's object-storage streamer makes them); the Hugging Face
# Hub gives less.
LOAD_GIB_PER_S = {"bucket": 0.25, "hub": 0.1, "image": 1.0}
ENGINE_START_S = 300


def startup_seconds(weights_gib: float, source: str) -> int:
    """The startup probe's budget: twice the expected load and start, so a slow node is not killed."""
    return 2 * math.ceil(weights_gib / LOAD_GIB_PER_S[source] + ENGINE_START_S)
