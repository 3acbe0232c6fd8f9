"""A decoder-only transformer in plain JAX: RMSNorm, rotary attention, SwiGLU, tied embeddings.

Layers are stacked on a leading axis and run with lax.scan, so compile time does
not grow with depth. Every weight has a PartitionSpec over the mesh axes
("data", "fsdp", "tensor"): fsdp shards the model dimension, tensor shards heads
and the feed-forward width, and XLA inserts the collectives.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from meshstack.core.contract import ModelConfig

Params = dict[str, Any]

PARAM_SPECS: dict[str, P] = {
    "embed": P(None, "fsdp"),
    "final_norm": P(),
    "attn_norm": P(),
    "mlp_norm": P(),
    "wq": P(None, "fsdp", "tensor"),
    "wk": P(None, "fsdp", "tensor"),
    "wv": P(None, "fsdp", "tensor"),
    "wo": P(None, "tensor", "fsdp"),
    "w_gate": P(None, "fsdp", "tensor"),
    "w_up": P(None, "fsdp", "tensor"),
    "w_down": P(None, "tensor", "fsdp"),
}


def init_params(cfg: ModelConfig, key: jax.Array) -> Params:
    d, f, n = cfg.d_model, cfg.d_ff, cfg.n_layers
    keys = jax.random.split(key, 8)

    def dense(k: jax.Array, shape: tuple[int, ...], fan_in: int) -> jax.Array:
        return jax.random.normal(k, shape, jnp.float32) * (fan_in**-0.5)

    return {
        "embed": jax.random.normal(keys[0], (cfg.vocab_size, d), jnp.float32) * 0.02,
        "final_norm": jnp.ones((d,), jnp.float32),
        "layers": {
            "attn_norm": jnp.ones((n, d), jnp.float32),
            "mlp_norm": jnp.ones((n, d), jnp.float32),
            "wq": dense(keys[1], (n, d, d), d),
            "wk": dense(keys[2], (n, d, d), d),
            "wv": dense(keys[3], (n, d, d), d),
            "wo": dense(keys[4], (n, d, d), d) / (2 * n) ** 0.5,
            "w_gate": dense(keys[5], (n, d, f), d),
            "w_up": dense(keys[6], (n, d, f), d),
            "w_down": dense(keys[7], (n, f, d), f) / (2 * n) ** 0.5,
        },
    }


MATMUL_WEIGHTS = ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")


def mm(x: jax.Array, w: Any) -> jax.Array:
    """x @ w, where w is a weight or an int8 one ({"q": int8, "scale": per output channel}, from
    workloads.jax.quantize): int8 weights are widened to x's dtype and the scale applied after."""
    if isinstance(w, dict):
        return (x @ w["q"].astype(x.dtype)) * w["scale"].astype(x.dtype)
    return x @ w


def param_specs(params: Params) -> Params:
    """The PartitionSpec of every leaf, by its name."""
    return jax.tree_util.tree_map_with_path(lambda path, _: PARAM_SPECS[path[-1].key], params)


def rms_norm(x: jax.Array, scale: jax.Array) -> jax.Array:
    x32 = x.astype(jnp.float32)
    normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + 1e-6)
    return (normed * scale).astype(x.dtype)


def rotary(positions: jax.Array, head_dim: int) -> tuple[jax.Array, jax.Array]:
    freqs = 1.0 / (10000 ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    angles = positions[..., None].astype(jnp.float32) * freqs
    return jnp.cos(angles), jnp.sin(angles)


def apply_rotary(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    cos, sin = cos[:, :, None, :], sin[:, :, None, :]
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1).astype(x.dtype)


def forward(
    params: Params,
    tokens: jax.Array,
    positions: jax.Array,
    cfg: ModelConfig,
    dtype: jnp.dtype = jnp.float32,
    cache: tuple[jax.Array, jax.Array] | None = None,
    cache_index: jax.Array | int = 0,
    key_valid: jax.Array | None = None,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
    """Logits for `tokens` [B, T] at `positions` [B, T].

    Without a cache, attention is causal over the T tokens (training). With a
    cache ([L, B, S, H, Dh] keys and values), the tokens are written at
    `cache_index` and attend to every earlier slot that `key_valid` [B, S] marks
    as real (left padding is not), which is how the server prefills and decodes.
    """
    b, t = tokens.shape
    h, dh = cfg.n_heads, cfg.head_dim
    cast = cast_params(params, dtype)
    x = jnp.take(cast["embed"], tokens, axis=0)
    cos, sin = rotary(positions, dh)

    mask = None
    if cache is not None:
        if key_valid is None:
            raise ValueError("decoding with a cache needs key_valid, the mask of real (not padded) slots")
        slots = cache[0].shape[2]
        query_slot = cache_index + jnp.arange(t)
        mask = (jnp.arange(slots)[None, :] <= query_slot[:, None])[None] & key_valid[:, None, :]

    def layer(x: jax.Array, inputs: tuple[Params, Any]) -> tuple[jax.Array, Any]:
        p, layer_cache = inputs
        y = rms_norm(x, p["attn_norm"])
        q = apply_rotary(mm(y, p["wq"]).reshape(b, t, h, dh), cos, sin)
        k = apply_rotary(mm(y, p["wk"]).reshape(b, t, h, dh), cos, sin)
        v = mm(y, p["wv"]).reshape(b, t, h, dh)
        if layer_cache is not None:
            k_cache = jax.lax.dynamic_update_slice_in_dim(
                layer_cache[0], k.astype(layer_cache[0].dtype), cache_index, 1
            )
            v_cache = jax.lax.dynamic_update_slice_in_dim(
                layer_cache[1], v.astype(layer_cache[1].dtype), cache_index, 1
            )
            k, v, layer_cache = k_cache.astype(dtype), v_cache.astype(dtype), (k_cache, v_cache)
        if mask is None:
            # Causal self-attention over the sequence: cuDNN's fused (flash) kernel on a GPU, which
            # never writes the T x T scores to memory; XLA's own elsewhere.
            attn = jax.nn.dot_product_attention(q, k, v, is_causal=True).reshape(b, t, h * dh)
        else:
            scores = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) / jnp.sqrt(dh).astype(jnp.float32)
            scores = jnp.where(mask[:, None], scores, -1e30)
            weights = jax.nn.softmax(scores, axis=-1).astype(dtype)
            attn = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, t, h * dh)
        x = x + mm(attn, p["wo"])
        y = rms_norm(x, p["mlp_norm"])
        x = x + mm(jax.nn.silu(mm(y, p["w_gate"])) * mm(y, p["w_up"]), p["w_down"])
        return x, layer_cache

    layer_caches = None if cache is None else (cache[0], cache[1])
    if layer_caches is None:
        x, _ = jax.lax.scan(lambda c, p: layer(c, (p, None)), x, cast["layers"])
        new_cache = None
    else:
        x, new_cache = jax.lax.scan(layer, x, (cast["layers"], layer_caches))
    x = rms_norm(x, cast["final_norm"])
    logits = (x @ cast["embed"].T).astype(jnp.float32)
    return logits, new_cache


def cast_params(params: Params, dtype: jnp.dtype) -> Params:
    """Floating weights in the compute dtype; int8 weights stay int8 (mm widens them)."""
    return jax.tree.map(lambda a: a if a.dtype == jnp.int8 else a.astype(dtype), params)


def empty_cache(cfg: ModelConfig, batch: int, slots: int, dtype: jnp.dtype) -> tuple[jax.Array, jax.Array]:
    shape = (cfg.n_layers, batch, slots, cfg.n_heads, cfg.head_dim)
    return jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)


def loss_fn(params: Params, batch: jax.Array, cfg: ModelConfig, dtype: jnp.dtype) -> jax.Array:
    """Next-token cross-entropy on [B, T + 1] windows."""
    inputs, targets = batch[:, :-1], batch[:, 1:]
    positions = jnp.broadcast_to(jnp.arange(inputs.shape[1]), inputs.shape)
    logits, _ = forward(params, inputs, positions, cfg, dtype)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(log_probs, targets[..., None], axis=-1))
