"""Batched text generation with a KV cache: one prefill for the whole batch, then one step per token.

Shapes are bucketed (the batch and the prompt length each padded to a power of
two) so a handful of compiled programs serve every request mix.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from meshstack.core.contract import ModelConfig
from workloads.jax import tokenizer
from workloads.jax.model import empty_cache, forward

MIN_BUCKET = 16


def bucket(length: int, floor: int = MIN_BUCKET) -> int:
    """The next power of two at or above `length` (and `floor`): few shapes, little padding."""
    return max(floor, 1 << (max(length, 1) - 1).bit_length())


class Generator:
    def __init__(
        self, params: Any, cfg: ModelConfig, batch_size: int, max_new_tokens: int, dtype: jnp.dtype = jnp.float32
    ) -> None:
        self.params, self.cfg, self.batch_size, self.max_new_tokens, self.dtype = (
            params,
            cfg,
            batch_size,
            max_new_tokens,
            dtype,
        )
        self._prefill = jax.jit(partial(self._forward, cache_index=0))
        self._decode = jax.jit(self._forward)

    def _forward(
        self,
        params: Any,
        tokens: jax.Array,
        positions: jax.Array,
        key_valid: jax.Array,
        cache: tuple[jax.Array, jax.Array] | None,
        cache_index: jax.Array | int,
    ) -> tuple[jax.Array, Any]:
        logits, cache = forward(params, tokens, positions, self.cfg, self.dtype, cache, cache_index, key_valid)
        return logits[:, -1, :], cache

    def warm_up(self) -> None:
        """Compile every batch-size bucket for short prompts, so first requests do not pay for it."""
        rows = 1
        while rows <= self.batch_size:
            self.generate([tokenizer.encode("warm up", bos=True)] * rows, [2] * rows, [0.0] * rows)
            rows *= 2
        if rows // 2 != self.batch_size:
            n = self.batch_size
            self.generate([tokenizer.encode("warm up", bos=True)] * n, [2] * n, [0.0] * n)

    def max_prompt_tokens(self) -> int:
        return self.cfg.max_seq_len - self.max_new_tokens

    def generate(
        self, prompts: Sequence[np.ndarray], max_new: Sequence[int], temperature: Sequence[float], seed: int = 0
    ) -> list[list[int]]:
        """Completions for up to batch_size prompts, run together."""
        n = len(prompts)
        if not 0 < n <= self.batch_size:
            raise ValueError(f"a batch holds 1 to {self.batch_size} prompts, not {n}")
        rows = min(bucket(n, floor=1), self.batch_size)
        length = bucket(max(len(p) for p in prompts))
        slots = length + self.max_new_tokens
        tokens = np.full((rows, length), tokenizer.PAD, np.int32)
        valid = np.zeros((rows, slots), bool)
        lengths = np.ones(rows, np.int32)
        for i, prompt in enumerate(prompts):
            tokens[i, length - len(prompt) :] = prompt
            valid[i, length - len(prompt) : length] = True
            lengths[i] = len(prompt)
        valid[n:, length - 1] = True  # padding rows attend to one slot so their softmax stays finite
        positions = np.maximum(np.arange(length)[None, :] - (length - lengths[:, None]), 0)
        cache = empty_cache(self.cfg, rows, slots, self.dtype)
        logits, cache = self._prefill(self.params, tokens, positions, valid, cache)
        temps = np.zeros(rows, np.float32)
        temps[:n] = temperature
        limits = np.zeros(rows, np.int32)
        limits[:n] = max_new
        rng = np.random.default_rng(seed)
        out: list[list[int]] = [[] for _ in range(n)]
        finished = np.zeros(rows, bool)
        finished[n:] = True
        for i in range(int(limits.max())):
            nxt = self._pick(np.asarray(logits), temps, rng)
            for row in range(n):
                if not finished[row]:
                    if nxt[row] == tokenizer.EOS:
                        finished[row] = True
                    else:
                        out[row].append(int(nxt[row]))
                        finished[row] = len(out[row]) >= limits[row]
            if finished.all():
                break
            valid[:, length + i] = True
            logits, cache = self._decode(
                self.params, nxt[:, None].astype(np.int32), (lengths + i)[:, None], valid, cache, length + i
            )
        return out

    @staticmethod
    def _pick(logits: np.ndarray, temps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        logits = logits[:, : tokenizer.VOCAB_SIZE].astype(np.float64)
        logits[:, tokenizer.PAD] = -np.inf
        greedy = logits.argmax(-1)
        scaled = logits / np.maximum(temps, 1e-6)[:, None]
        probs = np.exp(scaled - scaled.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        sampled = np.array([rng.choice(len(p), p=p) for p in probs])
        return np.where(temps > 0, sampled, greedy)
