"""The serving engine under load on loopback: continuous batching against the same engine with batching
off, prefix caching on and off, and int8 weights' perplexity.

Trains a small checkpoint, then starts in this process one server that batches (up to 64 requests a
decode step) and one that does not (one request at a time, the same engine with max_batch_size 1),
and sends each the same streamed load at concurrency 1, 4, 16, 32 and 64: every request goes to
127.0.0.1, each level is capped in requests and in seconds. Then, one request at a time, prompts
that share a 200-token prefix, with the prefix cache on and off (time to first token). `--json`
prints the load table as a list of rows.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from meshstack.core.contract import JobConfig, ServeConfig, ServeJobConfig, TrainConfig
from meshstack.core.model_config import ModelConfig
from meshstack.workloads.jax import tokenizer
from meshstack.workloads.jax.data import ensure_corpus, held_out_text
from meshstack.workloads.jax.engine.loading import load_params
from meshstack.workloads.jax.quantize import perplexity, quantize_int8
from meshstack.workloads.jax.serving.launcher import Running, start
from meshstack.workloads.jax.train import run
from meshstack.workloads.local import free_port

LEVELS = (1, 4, 16, 32, 64)
CLIENT_PROCESSES = 4
# 9.5M parameters (38 MB in float32): past this CPU's caches, so one request's decode step is bound by
# reading the weights, as an LLM's is on an accelerator, and batching shares that read. A 0.6M model
# (d_model 128) fits in cache: its step is bound by arithmetic and 32 rows cost 3.8 times one.
MODEL = ModelConfig(
    hidden_size=384, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1536, max_position_embeddings=512
)
Result = tuple[float, float, int, float, float]


def one(port: int, prompt: str, max_tokens: int) -> Result:
    """A streamed completion: (seconds to the first token, seconds to the end, tokens, start and end
    as wall-clock times, for a throughput that counts no process start-up)."""
    wall = time.time()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body = {"model": "bench", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True}
    began = time.perf_counter()
    conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:200]!r}")
    first, tokens = None, 0
    for line in response:
        if not line.startswith(b"data: "):
            continue
        if line.strip() == b"data: [DONE]":
            break
        if first is None:
            first = time.perf_counter() - began
        tokens += len(json.loads(line[6:])["choices"][0]["text"].encode())  # a byte a token
    conn.close()
    elapsed = time.perf_counter() - began
    return first or 0.0, elapsed, tokens, wall, wall + elapsed


def _client(port: int, threads: int, requests: int, max_tokens: int, deadline: float) -> list[Result]:
    """One client process: `threads` connections sending `requests` streamed completions between them."""
    results: list[Result] = []
    lock = threading.Lock()
    remaining = iter(range(requests))

    def worker() -> None:
        while time.time() < deadline:
            with lock:
                i = next(remaining, None)
            if i is None:
                return
            result = one(port, f"Request {i} asks about the module", max_tokens)
            with lock:
                results.append(result)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return results


def load(
    pool: Any, server: Running, concurrency: int, requests: int, max_tokens: int, budget_s: float
) -> dict[str, float]:
    """The clients run in processes of their own (`pool`), as real clients do: in the server's process
    their threads would take its interpreter lock from it."""
    processes = min(concurrency, CLIENT_PROCESSES)
    threads = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    shares = [requests * t // concurrency for t in threads]
    deadline = time.time() + budget_s
    jobs = [(server.port, t, n, max_tokens, deadline) for t, n in zip(threads, shares, strict=True)]
    results = [r for part in pool.starmap(_client, jobs) for r in part]
    elapsed = max(r[4] for r in results) - min(r[3] for r in results)
    ends = sorted(r[1] for r in results)
    return {
        "requests": len(results),
        "requests_per_s": len(results) / elapsed,
        "tokens_per_s": sum(r[2] for r in results) / elapsed,
        "p50_ms": statistics.median(ends) * 1000,
        "p99_ms": ends[min(len(ends) - 1, int(0.99 * len(ends)))] * 1000,
        "ttft_p50_ms": statistics.median(r[0] for r in results) * 1000,
    }


def serve(ckpt: str, **settings: Any) -> Running:
    serve = ServeConfig(port=free_port(), max_queue=256, **settings)
    job = ServeJobConfig(name="bench", model=MODEL, checkpoint_uri=ckpt, serve=serve)
    return start(job, host="127.0.0.1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--budget-s", type=float, default=60.0, help="seconds at most per level")
    parser.add_argument("--json", action="store_true", help="print the load table as a JSON list of rows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, ckpt = Path(tmp, "data").as_uri(), Path(tmp, "ckpt").as_uri()
        ensure_corpus(data)
        train = TrainConfig(steps=150, global_batch=8, seq_len=128, checkpoint_every=150, log_every=150)
        run(JobConfig(name="bench", model=MODEL, train=train, data_uri=data, checkpoint_uri=ckpt))
        rows: list[dict[str, Any]] = []
        with multiprocessing.get_context("spawn").Pool(CLIENT_PROCESSES) as pool:
            for mode, batch in (("batched", 64), ("unbatched", 1)):
                server = serve(ckpt, max_batch_size=batch, max_new_tokens=args.max_tokens)
                try:
                    for level in LEVELS:
                        requests = max(4 * level, 16) if mode == "batched" else max(level, 16)
                        figures = load(pool, server, level, requests, args.max_tokens, args.budget_s)
                        rounded = {k: round(v, 2) for k, v in figures.items()}
                        rows.append({"concurrency": level, "mode": mode, **rounded})
                finally:
                    server.drain()
        prefix = prefix_ttft(ckpt)
        quality = int8_perplexity(ckpt)
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{'concurrency':>11} {'mode':>10} {'req/s':>8} {'tokens/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'TTFT p50':>9}")
    for r in rows:
        print(
            f"{r['concurrency']:>11} {r['mode']:>10} {r['requests_per_s']:>8.2f} {r['tokens_per_s']:>9.1f} "
            f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['ttft_p50_ms']:>9.1f}"
        )
    by = {(r["concurrency"], r["mode"]): r for r in rows}
    for level in (1, 32):
        b, u = by[(level, "batched")], by[(level, "unbatched")]
        print(
            f"concurrency {level}: throughput {b['requests_per_s'] / u['requests_per_s']:.2f}x the unbatched engine, "
            f"p99 {b['p99_ms'] / u['p99_ms']:.2f}x, p50 {b['p50_ms'] / u['p50_ms']:.2f}x"
        )
    print(
        f"200-token shared prefix, one request at a time: TTFT p50 {prefix['off']:.1f} ms without the prefix cache, "
        f"{prefix['on']:.1f} ms with it ({prefix['off'] / prefix['on']:.2f}x); hit rate {prefix['hit_rate']:.0%}"
    )
    print(
        f"held-out perplexity: {quality['float']:.3f} fp32, {quality['int8']:.3f} int8 "
        f"({(quality['int8'] / quality['float'] - 1) * 100:+.2f}%)"
    )


def prefix_ttft(ckpt: str, requests: int = 12) -> dict[str, float]:
    shared = ("The standard library's modules are documented in the reference; " * 4)[:199]
    figures: dict[str, float] = {}
    for name, cached in (("on", True), ("off", False)):
        server = serve(ckpt, max_batch_size=8, max_new_tokens=8, prefix_cache=cached)
        try:
            one(server.port, shared + " warm", 2)
            ttfts = [one(server.port, f"{shared} question {i}?", 2)[0] for i in range(requests)]
            figures[name] = statistics.median(ttfts) * 1000
            stats = server.state.engine.stats
            if cached:
                figures["hit_rate"] = stats.prefix_hits / max(stats.prefix_queries, 1)
        finally:
            server.drain()
    return figures


def int8_perplexity(ckpt: str) -> dict[str, float]:
    params = load_params(ServeJobConfig(name="bench", model=MODEL, checkpoint_uri=ckpt))
    tokens = np.asarray(tokenizer.encode(held_out_text()), np.int32)
    return {
        "float": perplexity(params, MODEL, tokens, 128, np.float32),
        "int8": perplexity(quantize_int8(params), MODEL, tokens, 128, np.float32),
    }


if __name__ == "__main__":
    main()
