"""Batched text generation with a KV cache: one prefill for the whole batch, then one step per token.

Shapes are bucketed (batch padded to the server's max batch, prompts left-padded
to a power of two) so a handful of compiled programs serve every request mix.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from workloads.jax import tokenizer
from workloads.jax.config import ModelConfig
from workloads.jax.model import empty_cache, forward

MIN_BUCKET = 16


def bucket(length: int) -> int:
    return max(MIN_BUCKET, 1 << (max(length, 1) - 1).bit_length())


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
        cache: tuple[jax.Array, jax.Array],
        cache_index: jax.Array | int,
    ) -> tuple[jax.Array, Any]:
        logits, cache = forward(params, tokens, positions, self.cfg, self.dtype, cache, cache_index, key_valid)
        return logits[:, -1, :], cache

    def max_prompt_tokens(self) -> int:
        return self.cfg.max_seq_len - self.max_new_tokens

    def generate(
        self, prompts: Sequence[np.ndarray], max_new: Sequence[int], temperature: Sequence[float], seed: int = 0
    ) -> list[list[int]]:
        """Completions for up to batch_size prompts, run together."""
        n = len(prompts)
        if not 0 < n <= self.batch_size:
            raise ValueError(f"a batch holds 1 to {self.batch_size} prompts, not {n}")
        length = bucket(max(len(p) for p in prompts))
        slots = length + self.max_new_tokens
        tokens = np.full((self.batch_size, length), tokenizer.PAD, np.int32)
        valid = np.zeros((self.batch_size, slots), bool)
        lengths = np.ones(self.batch_size, np.int32)
        for i, prompt in enumerate(prompts):
            tokens[i, length - len(prompt) :] = prompt
            valid[i, length - len(prompt) : length] = True
            lengths[i] = len(prompt)
        valid[n:, length - 1] = True  # padding rows attend to one slot so their softmax stays finite
        positions = np.maximum(np.arange(length)[None, :] - (length - lengths[:, None]), 0)
        cache = empty_cache(self.cfg, self.batch_size, slots, self.dtype)
        logits, cache = self._prefill(self.params, tokens, positions, valid, cache)
        temps = np.zeros(self.batch_size, np.float32)
        temps[:n] = temperature
        limits = np.zeros(self.batch_size, np.int32)
        limits[:n] = max_new
        rng = np.random.default_rng(seed)
        out: list[list[int]] = [[] for _ in range(n)]
        finished = np.zeros(self.batch_size, bool)
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
