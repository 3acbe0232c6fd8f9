"""What the HTTP server costs over its engine, and how evenly its streams arrive beside a busy
neighbour.

Trains a small host-bound checkpoint (a decode step well under a millisecond, so the server's own
work is what is measured), then, in one run:
- at concurrency 32, streamed completions over loopback from client processes of their own
  (bench/serve_load.py's load): `server_tokens_per_s`; the same batch of prompts through the engine's
  own loop in this process (no HTTP, no second process): `engine_tokens_per_s`; and their ratio;
- at concurrency 8, with a process spinning on a core beside the server: the gaps between a stream's
  token events as its client reads them, `p99_gap_over_step` (their p99 over the engine's median
  decode step at that batch, measured in this process under the same neighbour), and the events
  that carried more than one token (`multi_token_chunks`; the byte model makes a byte a token).
`--json` prints the figures as one object.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import multiprocessing
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from serve_load import load

from meshstack.core.contract import JobConfig, ServeConfig, ServeJobConfig, TrainConfig
from meshstack.core.model_config import ModelConfig
from meshstack.workloads.jax import tokenizer
from meshstack.workloads.jax.data import ensure_corpus
from meshstack.workloads.jax.engine.core import Engine
from meshstack.workloads.jax.engine.loading import load_engine
from meshstack.workloads.jax.engine.request import Output, Request, Sampling
from meshstack.workloads.jax.engine.stats import NoObserver
from meshstack.workloads.jax.serving.launcher import start
from meshstack.workloads.jax.train import run
from meshstack.workloads.local import free_port

# 0.2M parameters: in this CPU's caches, a decode step of 32 rows well under a millisecond.
MODEL = ModelConfig(
    hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256, max_position_embeddings=256
)
PROMPT = "Request {i} asks about the module"
THROUGHPUT_CONCURRENCY = 32
GAP_CONCURRENCY = 8
CLIENT_PROCESSES = 4


def engine_rate(engine: Engine, requests: int, concurrency: int, max_tokens: int) -> tuple[float, float]:
    """The engine's own loop in this process over `requests` requests, all queued at once, so it keeps
    `concurrency` of them (its rows) decoding as the server's clients do: (tokens per second, median
    step in seconds past the first `concurrency`, each of which prefilled a prompt)."""
    done: list[Output] = []

    def sink(out: Output) -> None:
        if out.finish_reason:
            done.append(out)

    for i in range(requests):
        prompt = tokenizer.encode(PROMPT.format(i=i), bos=True)
        engine.submit(Request([int(t) for t in prompt], Sampling(max_tokens, 0.0), sink))
    steps: list[float] = []
    began = time.perf_counter()
    while not engine.idle():
        step_began = time.perf_counter()
        engine.step()
        steps.append(time.perf_counter() - step_began)
    elapsed = time.perf_counter() - began
    tokens = sum(out.completion_tokens for out in done)
    decoding = steps[concurrency:] or steps  # past each request's prefill step
    return tokens / elapsed, statistics.median(decoding)


def stream_gaps(port: int, prompt: str, max_tokens: int) -> tuple[list[float], int]:
    """One streamed completion: the gaps between its token events as read, and how many carried more
    than one token."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body = {"model": "bench", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True}
    conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:200]!r}")
    arrivals: list[float] = []
    multi = 0
    for line in response:
        if line.strip() == b"data: [DONE]":
            break
        if not line.startswith(b"data: "):
            continue
        text = json.loads(line[6:])["choices"][0]["text"]
        if text:
            arrivals.append(time.perf_counter())
            multi += len(text.encode()) > 1
    conn.close()
    return [b - a for a, b in itertools.pairwise(arrivals)], multi


def _gap_client(port: int, streams: int, rounds: int, max_tokens: int) -> tuple[list[float], int]:
    """One client process: `streams` threads, each sending `rounds` streams one after another."""
    gaps: list[float] = []
    multi = [0]
    lock = threading.Lock()

    def worker(w: int) -> None:
        for r in range(rounds):
            found, n = stream_gaps(port, PROMPT.format(i=w * rounds + r), max_tokens)
            with lock:
                gaps.extend(found)
                multi[0] += n

    pool = [threading.Thread(target=worker, args=(w,)) for w in range(streams)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return gaps, multi[0]


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def measure(ckpt: str, max_tokens: int, rounds: int, budget_s: float) -> dict[str, Any]:
    serve = ServeConfig(
        port=free_port(), max_batch_size=THROUGHPUT_CONCURRENCY, max_queue=256, max_new_tokens=max_tokens
    )
    job = ServeJobConfig(name="bench", model=MODEL, checkpoint_uri=ckpt, serve=serve)
    engine = load_engine(job, NoObserver())
    engine.warm_up()
    requests = THROUGHPUT_CONCURRENCY * rounds
    engine_rate(engine, THROUGHPUT_CONCURRENCY, THROUGHPUT_CONCURRENCY, max_tokens)  # pays for lazy set-up
    engine_tps, _ = engine_rate(engine, requests, THROUGHPUT_CONCURRENCY, max_tokens)
    server = start(job, host="127.0.0.1")
    ctx = multiprocessing.get_context("spawn")
    try:
        with ctx.Pool(CLIENT_PROCESSES) as pool:
            load(pool, server, THROUGHPUT_CONCURRENCY, THROUGHPUT_CONCURRENCY, max_tokens, budget_s)  # warm
            figures = load(pool, server, THROUGHPUT_CONCURRENCY, requests, max_tokens, budget_s)
            neighbour = ctx.Process(target=_spin, args=(budget_s + 60,), daemon=True)
            neighbour.start()
            try:
                time.sleep(0.5)  # the neighbour is up to speed
                _, step_s = engine_rate(engine, GAP_CONCURRENCY, GAP_CONCURRENCY, max_tokens)
                per_process = GAP_CONCURRENCY // CLIENT_PROCESSES
                jobs = [(server.port, per_process, rounds, max_tokens)] * CLIENT_PROCESSES
                parts = pool.starmap(_gap_client, jobs)
            finally:
                neighbour.kill()
                neighbour.join()
    finally:
        server.drain()
    gaps = sorted(g for part, _ in parts for g in part)
    p99 = gaps[min(len(gaps) - 1, int(0.99 * len(gaps)))]
    return {
        "server_tokens_per_s": round(figures["tokens_per_s"], 1),
        "engine_tokens_per_s": round(engine_tps, 1),
        "server_over_engine": round(figures["tokens_per_s"] / engine_tps, 3),
        "concurrency": THROUGHPUT_CONCURRENCY,
        "gap_concurrency": GAP_CONCURRENCY,
        "median_decode_step_ms": round(step_s * 1000, 3),
        "p99_gap_ms": round(p99 * 1000, 3),
        "p99_gap_over_step": round(p99 / step_s, 2),
        "multi_token_chunks": sum(n for _, n in parts),
        "gaps": len(gaps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=4, help="requests each connection sends, per measurement")
    parser.add_argument("--train-steps", type=int, default=100)
    parser.add_argument("--budget-s", type=float, default=60.0, help="seconds at most per measurement")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, ckpt = Path(tmp, "data").as_uri(), Path(tmp, "ckpt").as_uri()
        ensure_corpus(data)
        steps = args.train_steps
        train = TrainConfig(steps=steps, global_batch=8, seq_len=128, checkpoint_every=steps, log_every=steps)
        run(JobConfig(name="bench", model=MODEL, train=train, data_uri=data, checkpoint_uri=ckpt))
        result = measure(ckpt, args.max_tokens, args.rounds, args.budget_s)
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"concurrency {result['concurrency']}: {result['server_tokens_per_s']} tokens/s through the server, "
        f"{result['engine_tokens_per_s']} in the engine's own loop ({result['server_over_engine']:.2f}x)"
    )
    print(
        f"concurrency {result['gap_concurrency']} beside a busy core: p99 gap {result['p99_gap_ms']} ms, "
        f"{result['p99_gap_over_step']}x the median decode step ({result['median_decode_step_ms']} ms); "
        f"{result['multi_token_chunks']} events of more than one token"
    )


if __name__ == "__main__":
    main()
