"""Throughput and latency of the inference server on loopback, with dynamic batching and without.

Trains a small checkpoint, starts two servers from it in this process (max batch
8 with a 20 ms window, and max batch 1), and sends the same bounded load at
rising concurrency to each. Every request goes to 127.0.0.1 only; each level is
capped in requests and in time.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from meshstack.core.contract import JobConfig, ServeConfig, ServeJobConfig, TrainConfig
from workloads.jax.data import ensure_corpus
from workloads.jax.serve import Server, drain, start
from workloads.jax.train import run
from workloads.local import free_port


def load(server: Server, concurrency: int, requests: int, max_new: int, budget_s: float) -> dict[str, float]:
    latencies: list[float] = []
    tokens = 0
    lock = threading.Lock()
    deadline = time.monotonic() + budget_s
    remaining = iter(range(requests))

    def worker() -> None:
        nonlocal tokens
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
        while time.monotonic() < deadline:
            with lock:
                if next(remaining, None) is None:
                    break
            body = json.dumps({"prompt": "The module provides", "max_new_tokens": max_new})
            began = time.perf_counter()
            conn.request("POST", "/v1/generate", body=body)
            answer = json.loads(conn.getresponse().read())
            with lock:
                latencies.append(time.perf_counter() - began)
                tokens += answer["completion_tokens"]
        conn.close()

    began = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "rps": len(ordered) / elapsed,
        "tokens_per_s": tokens / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=24, help="requests per concurrency level")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--budget-s", type=float, default=30.0, help="time cap per level")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, ckpt = Path(tmp, "data").as_uri(), Path(tmp, "ckpt").as_uri()
        ensure_corpus(data)
        with contextlib.redirect_stdout(io.StringIO()):
            run(
                JobConfig(
                    name="bench",
                    data_uri=data,
                    checkpoint_uri=ckpt,
                    train=TrainConfig(steps=20, global_batch=8, checkpoint_every=20),
                )
            )
        servers = {}
        for label, batch in (("batched", 8), ("unbatched", 1)):
            job = ServeJobConfig(
                name=label,
                checkpoint_uri=ckpt,
                serve=ServeConfig(
                    port=free_port(),
                    max_batch_size=batch,
                    batch_timeout_ms=20.0,
                    max_new_tokens=args.max_new_tokens,
                    max_queue=256,
                ),
            )
            servers[label] = start(job, host="127.0.0.1")[0]
        for server in servers.values():  # compile every batch shape this prompt needs before timing
            for concurrency in (8, 4, 2, 1):
                load(server, concurrency, 2 * concurrency, args.max_new_tokens, args.budget_s)
        print(f"{'concurrency':>11} {'mode':>10} {'req/s':>8} {'tokens/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
        for concurrency in (1, 2, 4, 8):
            row = {}
            for label, server in servers.items():
                row[label] = load(server, concurrency, args.requests, args.max_new_tokens, args.budget_s)
                r = row[label]
                print(
                    f"{concurrency:>11} {label:>10} {r['rps']:>8.2f} {r['tokens_per_s']:>9.1f} "
                    f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f}"
                )
            print(
                f"{'':>11} {'ratio':>10} {row['batched']['rps'] / row['unbatched']['rps']:>8.2f}  "
                "(batched / unbatched throughput)"
            )
        for server in servers.values():
            drain(server)


if __name__ == "__main__":
    main()
