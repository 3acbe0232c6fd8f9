"""The model's compiled steps over the slotted KV cache: one prefill chunk of one request, one decode
step of many, and a row copy (a reused prefix). Sampling (temperature, top-p, a per-request seed)
runs in the compiled step: only token ids come back to the host.

The KV cache is `slots` rows of max_seq_len positions of each layer's key/value heads (grouped-query
attention keeps fewer than the query heads), plus one spare row that takes padding rows' writes.
The layers are the model's own (workloads/jax/model.py: `decoder_layer`), run one by one with an
attention that writes the new keys and values into the cache and reads the row back. Shapes are
bucketed to powers of two (rows, chunk length, attention span) and every one is compiled by
`warm_up`, so no request pays for a compilation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from meshstack.core.model_config import ModelConfig
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

MIN_CHUNK = 16
MIN_SPAN = 64  # the shortest attention span a decode step compiles for

Cache = tuple[jax.Array, jax.Array]
SamplingArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def bucket(n: int, floor: int = 1) -> int:
    """The next power of two at or above n: a few compiled shapes serve every mix."""
    return max(floor, 1 << (max(n, 1) - 1).bit_length())


@dataclass(frozen=True)
class RowSampling:
    """One row's sampling inputs: its temperature, top-p, seed, and how many tokens it has made."""

    temperature: float
    top_p: float
    seed: int
    step: int


def sampling_arrays(rows: Sequence[RowSampling], size: int) -> SamplingArrays:
    """The rows' sampling inputs padded to `size` (padding rows sample greedily, unread)."""
    temps = np.zeros(size, np.float32)
    top_ps = np.ones(size, np.float32)
    seeds = np.zeros(size, np.int32)
    steps = np.zeros(size, np.int32)
    for i, r in enumerate(rows):
        temps[i], top_ps[i], seeds[i], steps[i] = r.temperature, r.top_p, r.seed, r.step
    return temps, top_ps, seeds, steps


class ModelSteps:
    def __init__(
        self,
        params: Params,
        cfg: ModelConfig,
        slots: int,
        max_seq_len: int,
        chunk: int,
        dtype: jnp.dtype,
        allowed: np.ndarray,
        pad: int,
        devices: Sequence[jax.Device],
    ) -> None:
        self.cfg, self.slots, self.max_seq_len, self.chunk, self.pad = cfg, slots, max_seq_len, chunk, pad
        self.allowed = allowed
        self.inv_freq = rope_frequencies(cfg)
        self.mesh = Mesh(np.array(list(devices)), ("tensor",))
        self.params = self._place(cast_params(params, dtype))
        shape = (cfg.num_hidden_layers, slots + 1, max_seq_len, cfg.kv_heads, cfg.head_size)
        cache_sharding = NamedSharding(self.mesh, P(None, None, None, "tensor", None))
        self.cache: Cache = (
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
        self._copy = jax.jit(_copy_fn, donate_argnums=(0,), out_shardings=caches)

    # --- what the scheduler calls ----------------------------------------------------------------

    def prefill(self, slot: int, tokens: list[int], start: int, sampling: RowSampling) -> int:
        """Write `tokens` (at most one chunk) into the row from position `start`, and sample the token
        after them (the request's first when they end its prompt)."""
        size = min(self.chunk, bucket(len(tokens), MIN_CHUNK))
        padded = np.full((1, size), self.pad, np.int32)
        padded[0, : len(tokens)] = tokens
        token, self.cache = self._prefill(
            self.params,
            self.cache,
            np.int32(slot),
            padded,
            np.int32(start),
            np.int32(len(tokens) - 1),
            sampling_arrays([sampling], 1),
            span=self.span(start + size),
        )
        return int(np.asarray(token)[0])

    def decode(
        self, slots: list[int], tokens: list[int], positions: list[int], sampling: list[RowSampling]
    ) -> np.ndarray:
        """One token for each row: row `slots[i]` reads `tokens[i]` at `positions[i]`."""
        rows = min(bucket(len(slots)), bucket(self.slots))
        slot_ids = np.full(rows, self.slots, np.int32)  # padding rows write to the spare row
        token_ids = np.full(rows, self.pad, np.int32)
        where = np.zeros(rows, np.int32)
        slot_ids[: len(slots)], token_ids[: len(tokens)], where[: len(positions)] = slots, tokens, positions
        span = self.span(int(where.max()) + 1)
        picked, self.cache = self._decode(
            self.params, self.cache, slot_ids, token_ids, where, sampling_arrays(sampling, rows), span=span
        )
        return np.asarray(picked)[: len(slots)]

    def copy_row(self, src: int, dst: int) -> None:
        self.cache = self._copy(self.cache, np.int32(src), np.int32(dst))

    def span(self, needed: int) -> int:
        """The attention span a step compiles for: a power of two from MIN_SPAN to max_seq_len."""
        return min(self.max_seq_len, bucket(needed, MIN_SPAN))

    def spans(self) -> list[int]:
        out, span = [], self.span(1)
        while True:
            out.append(span)
            if span >= self.max_seq_len:
                return out
            span = self.span(span + 1)

    def warm_up(self) -> None:
        """Compile every prefill (chunk, span) and decode (rows, span) shape before a first request pays
        for one. The calls write into row 0 and the spare row; no row holds tokens until a request does."""
        chunks = [c for c in (MIN_CHUNK << i for i in range(16)) if c <= self.chunk]
        one = sampling_arrays([], 1)
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
                    sampling_arrays([], rows),
                    span=span,
                )
            rows *= 2
        np.asarray(token)

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

    # --- the compiled functions ------------------------------------------------------------------

    def _layers(
        self,
        params: Params,
        cache: Cache,
        x: jax.Array,
        positions: jax.Array,
        write: Callable[[jax.Array, int, jax.Array], jax.Array],
        read: Callable[[jax.Array, int], jax.Array],
        mask: jax.Array,
    ) -> tuple[jax.Array, Cache]:
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
        cache: Cache,
        slot: jax.Array,
        tokens: jax.Array,
        start: jax.Array,
        last: jax.Array,
        sampling: tuple[jax.Array, ...],
        span: int,
    ) -> tuple[jax.Array, Cache]:
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
        cache: Cache,
        slots: jax.Array,
        tokens: jax.Array,
        positions: jax.Array,
        sampling: tuple[jax.Array, ...],
        span: int,
    ) -> tuple[jax.Array, Cache]:
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


def _copy_fn(cache: Cache, src: jax.Array, dst: jax.Array) -> Cache:
    return tuple(c.at[:, dst].set(c[:, src]) for c in cache)  # type: ignore[return-value]
