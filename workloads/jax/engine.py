"""The serving engine: continuous batching over a slotted KV cache, with prefix reuse and sampling on
the device.

The KV cache is `slots` rows of max_seq_len positions of each layer's key/value heads (grouped-query
attention keeps fewer than the query heads), sized from the memory budget (serve.kv_cache_gib); a
request holds one row from admission to its last token. The scheduler thread loops: admit waiting
requests into free rows, run at most one prefill chunk (so a long prompt never stalls the others'
decoding for long), then one decode step for every request that is decoding, bucketed to a power of
two of rows. A request that arrives to an idle engine starts at once; one that finishes leaves the
batch at the next step; nothing waits for a batch to fill.

A finished request's row keeps its tokens' KV until another request takes the row. A new request
whose prompt starts with tokens some row holds (a system prompt, the chat so far) reuses them:
it takes that row if it is free, or has the row copied into a free one, and prefills only the
rest. Sampling (temperature, top-p, a per-request seed) runs in the compiled step: only token
ids come back to the host.

The layers are the model's own (workloads/jax/model.py: `decoder_layer`), run one by one with an
attention that writes the new keys and values into the cache and reads the row back.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from meshstack.core.model_config import ModelConfig
from meshstack.core.sizing import kv_cache_rows, of_model
from meshstack.workloads.jax.model import (
    PARAM_SPECS,
    Params,
    cast_params,
    decoder_layer,
    embed,
    logits_of,
    masked_attention,
    rope_frequencies,
    rotary,
)
from meshstack.workloads.jax.tokenization import ByteTokenizer, Stream, Tokenizer

PREFIX_MIN = 16  # a shared prefix shorter than this is not worth a row copy
MIN_CHUNK = 16
MIN_SPAN = 64  # the shortest attention span a decode step compiles for


def bucket(n: int, floor: int = 1) -> int:
    """The next power of two at or above n: a few compiled shapes serve every mix."""
    return max(floor, 1 << (max(n, 1) - 1).bit_length())


class EngineFullError(Exception):
    """No row is free and the waiting line is full: the client should retry later."""


class EngineDrainingError(Exception):
    """The server is shutting down and takes no new work."""


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class Output:
    """What a request's sink hears: text as it is decided, then once `finish_reason` is set, the end."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


@dataclass(eq=False)
class Request:
    prompt: list[int]
    sampling: Sampling
    sink: Callable[[Output], None]
    arrived: float = field(default_factory=time.perf_counter)
    cancelled: threading.Event = field(default_factory=threading.Event)
    slot: int = -1
    prefilled: int = 0
    generated: list[int] = field(default_factory=list)
    cached_tokens: int = 0
    first_token_at: float | None = None
    seed: int = 0
    _stream: Stream | None = None
    _text: str = ""
    _sent: int = 0

    @property
    def decoding(self) -> bool:
        return self.prefilled >= len(self.prompt) and self.first_token_at is not None


@dataclass
class EngineStats:
    """Counts since start, read by the server's metrics and the benchmark (what is running and waiting
    now, they read from the engine's own lists)."""

    prefix_queries: int = 0
    prefix_hits: int = 0
    generated_tokens: int = 0


# (event, value): "ttft", "tpot", "e2e" (seconds), "batch" (requests), "tokens", "prefix_query", "prefix_hit"
# (tokens reused)
Observer = Callable[[str, float], None]


class Engine:
    def __init__(
        self,
        params: Params,
        cfg: ModelConfig,
        max_batch: int,
        max_waiting: int,
        kv_cache_gib: float | None = None,
        dtype: jnp.dtype = jnp.float32,
        prefill_chunk: int = 256,
        prefix_cache: bool = True,
        devices: Sequence[jax.Device] | None = None,
        observe: Observer | None = None,
        tokenizer: Tokenizer | None = None,
        max_seq_len: int | None = None,
    ) -> None:
        self.cfg, self.dtype, self.prefix_cache = cfg, dtype, prefix_cache
        self.max_waiting = max_waiting
        self.tokenizer: Tokenizer = tokenizer or ByteTokenizer()
        self.max_seq_len = max_seq_len or cfg.max_position_embeddings
        if self.max_seq_len > cfg.max_position_embeddings:
            raise ValueError(
                f"serve.max_seq_len {self.max_seq_len} exceeds the model's max_position_embeddings "
                f"{cfg.max_position_embeddings}"
            )
        try:
            self.slots = kv_cache_rows(
                of_model(cfg), self.max_seq_len, jnp.dtype(dtype).itemsize, max_batch, kv_cache_gib
            )
        except ValueError as exc:
            raise ValueError(f"serve.kv_cache_gib {kv_cache_gib}: {exc}") from None
        self.chunk = max(MIN_CHUNK, bucket(min(prefill_chunk, self.max_seq_len)))
        self.pad = self.tokenizer.pad_id
        vocab = np.arange(cfg.vocab_size)
        # What sampling may pick: ids the tokenizer has, none it bans (the byte model's PAD).
        self.allowed = (vocab < self.tokenizer.vocab_size) & ~np.isin(vocab, list(self.tokenizer.banned_ids))
        self.inv_freq = rope_frequencies(cfg)
        self.observe = observe or (lambda event, value: None)
        self.stats = EngineStats()
        devices = list(devices or jax.local_devices()[:1])
        self.mesh = Mesh(np.array(devices), ("tensor",))
        self.params = self._place(cast_params(params, dtype))
        # One row beyond the real ones takes the writes of padding rows.
        shape = (cfg.num_hidden_layers, self.slots + 1, self.max_seq_len, cfg.kv_heads, cfg.head_size)
        cache_sharding = NamedSharding(self.mesh, P(None, None, None, "tensor", None))
        self.cache = (
            jax.device_put(jnp.zeros(shape, dtype), cache_sharding),
            jax.device_put(jnp.zeros(shape, dtype), cache_sharding),
        )
        # The cache keeps one sharding in and out of every step: a step whose output came back laid out
        # otherwise would make the next step compile again for it.
        caches = (cache_sharding, cache_sharding)
        ids = NamedSharding(self.mesh, P())
        self._prefill = jax.jit(
            self._prefill_fn, donate_argnums=(1,), out_shardings=(ids, caches), static_argnames=("span",)
        )
        self._decode = jax.jit(
            self._decode_fn, donate_argnums=(1,), out_shardings=(ids, caches), static_argnames=("span",)
        )
        self._copy = jax.jit(self._copy_fn, donate_argnums=(0,), out_shardings=caches)
        self.held: list[list[int]] = [[] for _ in range(self.slots)]  # tokens whose KV each row holds
        self.owner: list[Request | None] = [None] * self.slots
        self.freed_at = [0.0] * self.slots
        self.waiting: queue.Queue[Request] = queue.Queue()
        self.running: list[Request] = []
        self.draining = threading.Event()
        self._wake = threading.Condition()
        self._seeds = np.random.default_rng()
        self._stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="engine", daemon=True)

    # --- placement -------------------------------------------------------------------------------

    def _place(self, params: Params) -> Params:
        """Weights over the devices' `tensor` axis (heads and the feed-forward width), as in training."""

        def spec_of(path: tuple[Any, ...], leaf: jax.Array) -> NamedSharding:
            names = [getattr(p, "key", None) for p in path]
            weight = next((n for n in reversed(names) if n in PARAM_SPECS), None)
            spec = PARAM_SPECS.get(weight or "", P())
            axes = [a if a == "tensor" else None for a in spec]
            if names[-1] == "scale":  # an int8 weight's per-column scale: [.., 1, out]
                axes = [None, None, axes[-1]] if len(axes) == 3 else axes
            axes = axes[: leaf.ndim] + [None] * (leaf.ndim - len(axes))
            return NamedSharding(self.mesh, P(*axes))

        shardings = jax.tree_util.tree_map_with_path(spec_of, params)
        return jax.device_put(params, shardings)

    # --- the compiled steps ----------------------------------------------------------------------

    def _layers(
        self,
        params: Params,
        cache: tuple[jax.Array, jax.Array],
        x: jax.Array,
        positions: jax.Array,
        write: Callable[[jax.Array, int, jax.Array], jax.Array],
        read: Callable[[jax.Array, int], jax.Array],
        mask: jax.Array,
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        """The model's layers unrolled, so each writes its keys and values into the cache in place."""
        cos, sin = rotary(positions, self.inv_freq)
        kv = list(cache)
        for layer in range(self.cfg.num_hidden_layers):
            p = jax.tree.map(lambda a, i=layer: a[i], params["layers"])

            def attend(q: jax.Array, k: jax.Array, v: jax.Array, layer: int = layer) -> jax.Array:
                kv[0], kv[1] = write(kv[0], layer, k), write(kv[1], layer, v)
                return masked_attention(q, read(kv[0], layer), read(kv[1], layer), mask)

            x = decoder_layer(p, x, cos, sin, self.cfg, attend)
        return x, (kv[0], kv[1])

    def _sample(
        self, logits: jax.Array, temps: jax.Array, top_ps: jax.Array, seeds: jax.Array, steps: jax.Array
    ) -> jax.Array:
        """Greedy at temperature 0; else temperature and nucleus (top-p) sampling, one PRNG stream per
        request (its seed, folded with its step), so a seeded request is reproducible."""
        logits = jnp.where(jnp.asarray(self.allowed), logits, -jnp.inf)
        greedy = jnp.argmax(logits, axis=-1)
        scaled = logits / jnp.maximum(temps, 1e-6)[:, None]
        ordered = jnp.sort(scaled, axis=-1)[:, ::-1]
        probs = jax.nn.softmax(ordered, axis=-1)
        before = jnp.cumsum(probs, axis=-1) - probs
        kept = jnp.where(before < top_ps[:, None], ordered, jnp.inf)
        threshold = jnp.min(kept, axis=-1, keepdims=True)
        nucleus = jnp.where(scaled >= threshold, scaled, -jnp.inf)
        keys = jax.vmap(lambda s, i: jax.random.fold_in(jax.random.key(s), i))(seeds, steps)
        sampled = jax.vmap(jax.random.categorical)(keys, nucleus)
        return jnp.where(temps > 0, sampled, greedy).astype(jnp.int32)

    def _prefill_fn(
        self,
        params: Params,
        cache: tuple[jax.Array, jax.Array],
        slot: jax.Array,
        tokens: jax.Array,
        start: jax.Array,
        last: jax.Array,
        sampling: tuple[jax.Array, ...],
        span: int,
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        """One chunk of one request's prompt, [1, T] at positions start.., written into its row; the
        token after the chunk's `last` real position, sampled. Attention reads the row's first `span`
        positions (the chunk ends below it)."""
        t = tokens.shape[1]
        positions = start + jnp.arange(t)[None, :]
        x = embed(params, tokens)
        mask = (jnp.arange(span)[None, :] <= positions[0][:, None])[None]

        def write(c: jax.Array, layer: int, new: jax.Array) -> jax.Array:
            return jax.lax.dynamic_update_slice(c, new[None].astype(c.dtype), (layer, slot, start, 0, 0))

        def read(c: jax.Array, layer: int) -> jax.Array:
            return jax.lax.dynamic_index_in_dim(c[layer, :, :span], slot, axis=0, keepdims=True)

        x, cache = self._layers(params, cache, x, positions, write, read, mask)
        logits = logits_of(params, jax.lax.dynamic_index_in_dim(x[0], last, axis=0), self.cfg)
        return self._sample(logits, *sampling), cache

    def _decode_fn(
        self,
        params: Params,
        cache: tuple[jax.Array, jax.Array],
        slots: jax.Array,
        tokens: jax.Array,
        positions: jax.Array,
        sampling: tuple[jax.Array, ...],
        span: int,
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        """One token for each of B requests: row `slots[i]`, the token at `positions[i]`. Attention
        reads the first `span` positions of each row (every position is below it): decoding is bound by
        reading the cache, so a batch of short requests must not pay for max_seq_len."""
        x = embed(params, tokens[:, None])
        mask = (jnp.arange(span)[None, :] <= positions[:, None])[:, None, :]

        def write(c: jax.Array, layer: int, new: jax.Array) -> jax.Array:
            return c.at[layer, slots, positions].set(new[:, 0].astype(c.dtype))

        def read(c: jax.Array, layer: int) -> jax.Array:
            return c[layer, :, :span][slots]

        x, cache = self._layers(params, cache, x, positions[:, None], write, read, mask)
        logits = logits_of(params, x[:, 0], self.cfg)
        return self._sample(logits, *sampling), cache

    @staticmethod
    def _copy_fn(cache: tuple[jax.Array, jax.Array], src: jax.Array, dst: jax.Array) -> tuple[jax.Array, jax.Array]:
        return tuple(c.at[:, dst].set(c[:, src]) for c in cache)  # type: ignore[return-value]

    # --- the scheduler ---------------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stopped.set()
        with self._wake:
            self._wake.notify()
        self.thread.join(timeout=10)

    def submit(self, request: Request) -> None:
        if self.draining.is_set():
            raise EngineDrainingError("the server is shutting down")
        free = self.slots - len(self.running)
        if self.waiting.qsize() >= self.max_waiting + max(free, 0):
            raise EngineFullError("every KV row is taken and the waiting line is full")
        request._stream = self.tokenizer.stream()
        request.seed = request.sampling.seed if request.sampling.seed is not None else int(self._seeds.integers(2**31))
        self.waiting.put(request)
        with self._wake:
            self._wake.notify()

    def idle(self) -> bool:
        return not self.running and self.waiting.empty()

    def warm_up(self) -> None:
        """Compile every prefill (chunk, span) and decode (rows, span) shape before a first request pays
        for one. The calls write into row 0 and the spare row; no row holds tokens until a request does."""
        chunks = [c for c in (MIN_CHUNK << i for i in range(16)) if c <= self.chunk]
        one = self._sampling_rows([], 1)
        for size in chunks:
            for span in (s for s in self.spans() if s >= size):
                tokens = np.full((1, size), self.pad, np.int32)
                _, self.cache = self._prefill(
                    self.params, self.cache, np.int32(0), tokens, np.int32(0), np.int32(0), one, span=span
                )
        rows = 1
        while rows <= bucket(self.slots):
            batch = np.full(rows, self.slots, np.int32)
            for span in self.spans():
                token, self.cache = self._decode(
                    self.params,
                    self.cache,
                    batch,
                    batch,
                    np.zeros(rows, np.int32),
                    self._sampling_rows([], rows),
                    span=span,
                )
            rows *= 2
        np.asarray(token)

    def _loop(self) -> None:
        while not self._stopped.is_set():
            if self.idle():
                with self._wake:
                    self._wake.wait_for(lambda: not self.idle() or self._stopped.is_set(), timeout=1.0)
                continue
            self._iteration()
            # Hand the GIL over between steps: the server's event loop, a thread of this process, has
            # this step's tokens to write. Without it, on a busy machine, the loop got the GIL only at
            # the interpreter's switch interval and a whole stream left in one write at its end.
            time.sleep(0)

    def _iteration(self) -> None:
        self._drop_cancelled()
        self._admit()
        pending = next((r for r in self.running if not r.decoding), None)
        if pending is not None:
            self._prefill_chunk(pending)
        decoding = [r for r in self.running if r.decoding]
        if decoding:
            self._decode_step(decoding)

    def _drop_cancelled(self) -> None:
        for r in [r for r in self.running if r.cancelled.is_set()]:
            self._finish(r, "cancelled")

    def _admit(self) -> None:
        while len(self.running) < self.slots and not self.waiting.empty():
            r = self.waiting.get()
            if r.cancelled.is_set():
                continue
            r.slot, r.prefilled = self._place_request(r.prompt)
            r.cached_tokens = r.prefilled
            self.owner[r.slot] = r
            self.running.append(r)

    def _place_request(self, prompt: list[int]) -> tuple[int, int]:
        """A free row for the prompt, and how many of its first tokens that row already holds."""
        free = [s for s in range(self.slots) if self.owner[s] is None]
        self.stats.prefix_queries += 1
        reuse, best = 0, -1
        if self.prefix_cache:
            limit = len(prompt) - 1  # the last prompt token always runs: it gives the first new one
            reuse, _, best = max(
                (_common(self.held[s], prompt, limit), self.owner[s] is None, s) for s in range(self.slots)
            )
        if reuse < PREFIX_MIN:
            best, reuse = -1, 0
        if best >= 0 and self.owner[best] is None:
            slot = best
        else:
            slot = min(free, key=lambda s: self.freed_at[s])
            if best >= 0:
                self.cache = self._copy(self.cache, np.int32(best), np.int32(slot))
        self.observe("prefix_query", 1)
        if reuse:
            self.stats.prefix_hits += 1
            self.observe("prefix_hit", reuse)
        self.held[slot] = list(prompt[:reuse])
        return slot, reuse

    def _sampling_rows(self, requests: Sequence[Request], rows: int) -> tuple[np.ndarray, ...]:
        temps = np.zeros(rows, np.float32)
        top_ps = np.ones(rows, np.float32)
        seeds = np.zeros(rows, np.int32)
        steps = np.zeros(rows, np.int32)
        for i, r in enumerate(requests):
            temps[i], top_ps[i] = r.sampling.temperature, r.sampling.top_p
            seeds[i], steps[i] = r.seed, len(r.generated)
        return temps, top_ps, seeds, steps

    def _prefill_chunk(self, r: Request) -> None:
        left = len(r.prompt) - r.prefilled
        size = min(self.chunk, bucket(left, MIN_CHUNK))
        real = min(left, size)
        tokens = np.full((1, size), self.pad, np.int32)
        tokens[0, :real] = r.prompt[r.prefilled : r.prefilled + real]
        token, self.cache = self._prefill(
            self.params,
            self.cache,
            np.int32(r.slot),
            tokens,
            np.int32(r.prefilled),
            np.int32(real - 1),
            self._sampling_rows([r], 1),
            span=self._span(r.prefilled + size),
        )
        self.held[r.slot].extend(r.prompt[r.prefilled : r.prefilled + real])
        r.prefilled += real
        if r.prefilled >= len(r.prompt):
            r.first_token_at = time.perf_counter()
            self.observe("ttft", r.first_token_at - r.arrived)
            self._accept(r, int(np.asarray(token)[0]))

    def _decode_step(self, requests: list[Request]) -> None:
        rows = min(bucket(len(requests)), bucket(self.slots))
        slots = np.full(rows, self.slots, np.int32)  # padding rows write to the spare row
        tokens = np.full(rows, self.pad, np.int32)
        positions = np.zeros(rows, np.int32)
        for i, r in enumerate(requests):
            slots[i], tokens[i] = r.slot, r.generated[-1]
            positions[i] = len(r.prompt) + len(r.generated) - 1
        began = time.perf_counter()
        span = self._span(int(positions.max()) + 1)
        nxt, self.cache = self._decode(
            self.params, self.cache, slots, tokens, positions, self._sampling_rows(requests, rows), span=span
        )
        picked = np.asarray(nxt)
        elapsed = time.perf_counter() - began
        self.observe("batch", len(requests))
        for i, r in enumerate(requests):
            self.held[r.slot].append(int(tokens[i]))
            self.observe("tpot", elapsed)
            self._accept(r, int(picked[i]))

    def _span(self, needed: int) -> int:
        """The attention span a decode step compiles for: a power of two from MIN_SPAN to max_seq_len."""
        return min(self.max_seq_len, bucket(needed, MIN_SPAN))

    def spans(self) -> list[int]:
        out, span = [], self._span(1)
        while True:
            out.append(span)
            if span >= self.max_seq_len:
                return out
            span = self._span(span + 1)

    def _accept(self, r: Request, token: int) -> None:
        """One new token: stream the text it completes, and finish on an end-of-sequence id (the model's
        eos_token_id), a stop string or a limit."""
        r.generated.append(token)
        self.stats.generated_tokens += 1
        self.observe("tokens", 1)
        if token in self.tokenizer.eos_ids:
            self._finish(r, "stop", drop_last=True)
            return
        assert r._stream is not None
        r._text += r._stream.step(token)
        for stop in r.sampling.stop:
            at = r._text.find(stop, max(0, r._sent - len(stop)))
            if at >= 0:
                r._text = r._text[:at]
                self._finish(r, "stop")
                return
        full = len(r.prompt) + len(r.generated) >= self.max_seq_len
        if len(r.generated) >= r.sampling.max_tokens or full:
            self._finish(r, "length")
            return
        hold = max((len(s) for s in r.sampling.stop), default=1) - 1  # text that may begin a stop string
        upto = len(r._text) - hold
        if upto > r._sent:
            r.sink(Output(r._text[r._sent : upto]))
            r._sent = upto

    def _finish(self, r: Request, reason: str, drop_last: bool = False) -> None:
        if drop_last:
            r.generated.pop()
        if reason != "cancelled":
            r._text += r._stream.flush() if r._stream is not None else ""
            self.observe("e2e", time.perf_counter() - r.arrived)
        completion = len(r.generated)
        r.sink(
            Output(
                r._text[r._sent :] if reason != "cancelled" else "",
                reason,
                prompt_tokens=len(r.prompt),
                completion_tokens=completion,
                cached_tokens=r.cached_tokens,
            )
        )
        r._sent = len(r._text)
        self.running.remove(r)
        self.owner[r.slot] = None
        self.freed_at[r.slot] = time.perf_counter()


def _common(held: list[int], prompt: list[int], limit: int) -> int:
    n, top = 0, min(limit, len(held))
    while n < top and held[n] == prompt[n]:
        n += 1
    return n
