"""The server the serving tests start and the clients they drive it with: one job shape, OpenAI's own
client pointed at it, and the engine decoded greedily in-process as the oracle for its tokens."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import openai

from meshstack.core.contract import ServeJobConfig
from meshstack.workloads.jax.engine.core import Engine
from meshstack.workloads.jax.engine.request import Output, Request, Sampling
from meshstack.workloads.jax.serving.launcher import Running
from meshstack.workloads.local import free_port

MODEL = "chat"


def serve_job(checkpoint: str, **serve: Any) -> ServeJobConfig:
    return ServeJobConfig(
        name=MODEL, checkpoint_uri=checkpoint, serve={"port": free_port(), "max_new_tokens": 16, **serve}
    )


def client(server: Running, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=kwargs.pop("api_key", "unused"), max_retries=0, **kwargs)


def greedy(engine: Engine, prompts: list[list[int]], n: int, gap_s: float = 0.0) -> list[Output]:
    """Each prompt's last output (its token ids, its cached tokens), decoded greedily."""
    done = [threading.Event() for _ in prompts]
    last: list[Output | None] = [None] * len(prompts)

    def sink(i: int) -> Callable[[Output], None]:
        def heard(out: Output) -> None:
            if out.finish_reason:
                last[i] = out
                done[i].set()

        return heard

    for i, p in enumerate(prompts):
        engine.submit(Request(p, Sampling(n, 0.0), sink(i)))
        time.sleep(gap_s)
    assert all(d.wait(60) for d in done)
    return [out for out in last if out is not None]
