"""What LLM serving dashboards chart (names in meshstack.core.observability), one method a
measurement: the engine's Observer (workloads/jax/engine/stats.py), replayed from each step's report
by the engine client's reader thread (engine_client.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from meshstack.core.observability import (
    SERVE_BATCH,
    SERVE_GENERATED_TOKENS,
    SERVE_IN_FLIGHT,
    SERVE_KV_USAGE,
    SERVE_LATENCY,
    SERVE_PREFIX_HIT_RATIO,
    SERVE_QUEUE,
    SERVE_RUNNING,
    SERVE_TOKENS_PER_SECOND,
    SERVE_TPOT,
    SERVE_TTFT,
)
from meshstack.workloads.jax.engine.stats import EngineStats, Load

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
RATE_WINDOW_S = 10


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self._ttft = Histogram(SERVE_TTFT, "Arrival to first token", registry=r, buckets=LATENCY_BUCKETS)
        self._tpot = Histogram(SERVE_TPOT, "Time per output token after the first", registry=r, buckets=TOKEN_BUCKETS)
        self._latency = Histogram(SERVE_LATENCY, "Arrival to last token", registry=r, buckets=LATENCY_BUCKETS)
        self._batch = Histogram(SERVE_BATCH, "Requests per decode step", registry=r, buckets=(1, 2, 4, 8, 16, 32, 64))
        self._tokens = Counter(SERVE_GENERATED_TOKENS, "Tokens generated", registry=r)
        self._requests = Counter("meshstack_requests", "Requests answered, by HTTP status", ["code"], registry=r)
        self._running = Gauge(SERVE_RUNNING, "Requests holding a KV row", registry=r)
        self._waiting = Gauge(SERVE_QUEUE, "Requests waiting for a KV row", registry=r)
        # What KEDA scales replicas on (workloads/k8s/inference_service.py): the load a replica holds.
        self._in_flight = Gauge(SERVE_IN_FLIGHT, "Requests accepted and not yet answered", registry=r)
        self._kv_usage = Gauge(SERVE_KV_USAGE, "Share of the KV cache's rows in use", registry=r)
        self._prefix_hit = Gauge(SERVE_PREFIX_HIT_RATIO, "Share of requests that reused a cached prefix", registry=r)
        self._prefix_queries = Counter("meshstack_prefix_cache_queries", "Requests looked up", registry=r)
        self._prefix_hits = Counter("meshstack_prefix_cache_hits", "Requests that reused a prefix", registry=r)
        self._prefix_tokens = Counter("meshstack_prefix_cache_tokens", "Prompt tokens not recomputed", registry=r)
        self._tokens_per_s = Gauge(SERVE_TOKENS_PER_SECOND, "Tokens generated per second, last 10 s", registry=r)
        self._recent: list[tuple[float, int]] = []
        self._lock = threading.Lock()

    # --- the engine's Observer -------------------------------------------------------------------

    def first_token(self, seconds: float) -> None:
        self._ttft.observe(seconds)

    def token_step(self, seconds: float) -> None:
        self._tpot.observe(seconds)

    def finished(self, seconds: float) -> None:
        self._latency.observe(seconds)

    def batch(self, requests: int) -> None:
        self._batch.observe(requests)

    def prefix_lookup(self, reused_tokens: int) -> None:
        self._prefix_queries.inc()
        if reused_tokens:
            self._prefix_hits.inc()
            self._prefix_tokens.inc(reused_tokens)

    def generated(self, tokens: int) -> None:
        self._tokens.inc(tokens)
        with self._lock:
            self._recent.append((time.monotonic(), tokens))

    # --- the server's own ------------------------------------------------------------------------

    def answered(self, status: int) -> None:
        self._requests.labels(code=str(status)).inc()

    def bind(self, load: Callable[[], Load], stats: Callable[[], EngineStats]) -> None:
        """The gauges read the engine's load and counts when scraped."""
        self._running.set_function(lambda: load().running)
        self._waiting.set_function(lambda: load().waiting)
        self._in_flight.set_function(lambda: load().running + load().waiting)
        self._kv_usage.set_function(lambda: load().running / load().slots)
        self._prefix_hit.set_function(lambda: _ratio(stats().prefix_hits, stats().prefix_queries))
        self._tokens_per_s.set_function(self._rate)

    def _rate(self) -> float:
        now = time.monotonic()
        with self._lock:
            self._recent = [(t, n) for t, n in self._recent if now - t <= RATE_WINDOW_S]
            return sum(n for _, n in self._recent) / RATE_WINDOW_S


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
