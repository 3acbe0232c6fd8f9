"""The Llama family's decoder in plain JAX, for training and serving alike: RMSNorm, rotary attention
(RoPE with rope_theta and linear or Llama-3 scaling), grouped-query attention, SwiGLU, tied or untied
embeddings. The shape comes from ModelConfig, whose names are Hugging Face's LlamaConfig's; the demo's
tiny byte-level model is one configuration of it.

The layer math is written once, in `decoder_layer`. Training runs it under lax.scan over the stacked
layers (compile time does not grow with depth) with causal attention over the sequence (`forward`);
the serving engine runs the same function layer by layer, with an `attend` that writes each layer's
keys and values into its slotted KV cache and reads them back (workloads/jax/engine/steps.py).

Every weight has a PartitionSpec over the mesh axes ("data", "fsdp", "tensor"): fsdp shards the model
dimension, tensor shards the heads (query and key/value alike) and the feed-forward width, and XLA
inserts the collectives. Matmul weights are stored [in, out]: a Hugging Face Linear's weight
transposed (workloads/jax/hf_weights.py maps the names).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from meshstack.core.model_config import ModelConfig

Params = dict[str, Any]
# (queries [B, T, H, Dh], keys and values [B, T, KV, Dh] of the new tokens) -> attention output [B, T, H, Dh]
Attend = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]

PARAM_SPECS: dict[str, P] = {
    "embed": P(None, "fsdp"),
    "lm_head": P("fsdp", None),
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

MATMUL_WEIGHTS = ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")


def param_shapes(cfg: ModelConfig) -> dict[str, Any]:
    """Every weight's shape, by the names of the parameter tree (layers stacked on a leading axis)."""
    d, f, n, v = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size
    q, kv = cfg.num_attention_heads * cfg.head_size, cfg.kv_heads * cfg.head_size
    shapes: dict[str, Any] = {
        "embed": (v, d),
        "final_norm": (d,),
        "layers": {
            "attn_norm": (n, d),
            "mlp_norm": (n, d),
            "wq": (n, d, q),
            "wk": (n, d, kv),
            "wv": (n, d, kv),
            "wo": (n, q, d),
            "w_gate": (n, d, f),
            "w_up": (n, d, f),
            "w_down": (n, f, d),
        },
    }
    if not cfg.tie_word_embeddings:
        shapes["lm_head"] = (d, v)
    return shapes


def init_params(cfg: ModelConfig, key: jax.Array) -> Params:
    n = cfg.num_hidden_layers
    shapes = param_shapes(cfg)
    # The keys of the model as it was before it had an untied head: the demo's model starts where it did.
    keys = iter(jax.random.split(key, 8))

    def dense(shape: tuple[int, ...], scale: float = 1.0) -> jax.Array:
        return jax.random.normal(next(keys), shape, jnp.float32) * (shape[-2] ** -0.5) * scale

    layers = shapes["layers"]
    params: Params = {
        "embed": jax.random.normal(next(keys), shapes["embed"], jnp.float32) * 0.02,
        "final_norm": jnp.ones(shapes["final_norm"], jnp.float32),
        "layers": {
            "attn_norm": jnp.ones(layers["attn_norm"], jnp.float32),
            "mlp_norm": jnp.ones(layers["mlp_norm"], jnp.float32),
            "wq": dense(layers["wq"]),
            "wk": dense(layers["wk"]),
            "wv": dense(layers["wv"]),
            "wo": dense(layers["wo"], (2 * n) ** -0.5),
            "w_gate": dense(layers["w_gate"]),
            "w_up": dense(layers["w_up"]),
            "w_down": dense(layers["w_down"], (2 * n) ** -0.5),
        },
    }
    if "lm_head" in shapes:
        params["lm_head"] = jax.random.normal(jax.random.fold_in(key, 8), shapes["lm_head"], jnp.float32) * (
            shapes["lm_head"][0] ** -0.5
        )
    return params


def mm(x: jax.Array, w: Any) -> jax.Array:
    """x @ w, where w is a weight or an int8 one ({"q": int8, "scale": per output channel}, from
    meshstack.workloads.jax.quantize): int8 weights are widened to x's dtype and the scale applied after."""
    if isinstance(w, dict):
        return (x @ w["q"].astype(x.dtype)) * w["scale"].astype(x.dtype)
    return x @ w


def param_specs(params: Params) -> Params:
    """The PartitionSpec of every leaf, by its name."""
    return jax.tree_util.tree_map_with_path(lambda path, _: PARAM_SPECS[path[-1].key], params)


def rms_norm(x: jax.Array, scale: jax.Array, eps: float) -> jax.Array:
    x32 = x.astype(jnp.float32)
    normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
    return (normed * scale).astype(x.dtype)


def rope_frequencies(cfg: ModelConfig) -> np.ndarray:
    """RoPE's inverse frequencies, one per pair of head dimensions, scaled as cfg.rope_scaling says
    (the arithmetic of Hugging Face's rope initialisation functions, in float32)."""
    dim = cfg.head_size
    inv = (1.0 / (np.float32(cfg.rope_theta) ** (np.arange(0, dim, 2).astype(np.float32) / np.float32(dim)))).astype(
        np.float32
    )
    scaling = cfg.rope_scaling
    if scaling is None:
        return inv
    factor = np.float32(scaling.factor)
    if scaling.rope_type == "linear":
        return (inv / factor).astype(np.float32)
    low, high = np.float32(scaling.low_freq_factor), np.float32(scaling.high_freq_factor)
    old = np.float32(scaling.original_max_position_embeddings)
    low_wavelen, high_wavelen = old / low, old / high
    wavelen = np.float32(2 * np.pi) / inv
    scaled = np.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return np.where(medium, smoothed, scaled).astype(np.float32)


def rotary(positions: jax.Array, inv_freq: np.ndarray) -> tuple[jax.Array, jax.Array]:
    angles = positions[..., None].astype(jnp.float32) * jnp.asarray(inv_freq)
    return jnp.cos(angles), jnp.sin(angles)


def apply_rotary(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate halves (x1, x2) of each head, as Llama's checkpoints are laid out (rotate_half)."""
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    cos, sin = cos[:, :, None, :], sin[:, :, None, :]
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1).astype(x.dtype)


def masked_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """Queries [B, T, H, Dh] over keys and values [B, S, KV, Dh] where mask [B, T, S] allows; each group of
    H / KV query heads shares one key/value head (grouped-query attention, as Hugging Face's repeat_kv)."""
    b, t, h, dh = q.shape
    kv = k.shape[2]
    grouped = q.reshape(b, t, kv, h // kv, dh)
    scores = jnp.einsum("btkgd,bskd->bkgts", grouped, k).astype(jnp.float32) / np.sqrt(dh).astype(np.float32)
    scores = jnp.where(mask[:, None, None], scores, -1e30)
    weights = jax.nn.softmax(scores, axis=-1).astype(q.dtype)
    return jnp.einsum("bkgts,bskd->btkgd", weights, v).reshape(b, t, h, dh)


def causal_attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """Causal self-attention over the sequence: cuDNN's fused (flash) kernel on a GPU, which never writes
    the T x T scores to memory; XLA's own elsewhere. Grouped key/value heads are taken as they are."""
    return jax.nn.dot_product_attention(q, k, v, is_causal=True)


def decoder_layer(
    p: Params, x: jax.Array, cos: jax.Array, sin: jax.Array, cfg: ModelConfig, attend: Attend
) -> jax.Array:
    """One pre-norm decoder layer: x + attention(norm(x)), then + SwiGLU(norm(x))."""
    b, t = x.shape[:2]
    h, kv, dh = cfg.num_attention_heads, cfg.kv_heads, cfg.head_size
    y = rms_norm(x, p["attn_norm"], cfg.rms_norm_eps)
    q = apply_rotary(mm(y, p["wq"]).reshape(b, t, h, dh), cos, sin)
    k = apply_rotary(mm(y, p["wk"]).reshape(b, t, kv, dh), cos, sin)
    v = mm(y, p["wv"]).reshape(b, t, kv, dh)
    x = x + mm(attend(q, k, v).reshape(b, t, h * dh), p["wo"])
    y = rms_norm(x, p["mlp_norm"], cfg.rms_norm_eps)
    return x + mm(jax.nn.silu(mm(y, p["w_gate"])) * mm(y, p["w_up"]), p["w_down"])


def embed(params: Params, tokens: jax.Array) -> jax.Array:
    return jnp.take(params["embed"], tokens, axis=0)


def logits_of(params: Params, x: jax.Array, cfg: ModelConfig) -> jax.Array:
    """The final norm and the output layer (the embedding transposed, when tied), in float32."""
    x = rms_norm(x, params["final_norm"], cfg.rms_norm_eps)
    head = params["embed"].T if cfg.tie_word_embeddings else params["lm_head"]
    return (x @ head).astype(jnp.float32)


def forward(
    params: Params, tokens: jax.Array, positions: jax.Array, cfg: ModelConfig, dtype: jnp.dtype = jnp.float32
) -> jax.Array:
    """Logits [B, T, V] for `tokens` [B, T] at `positions` [B, T], attention causal over the T tokens."""
    cast = cast_params(params, dtype)
    cos, sin = rotary(positions, rope_frequencies(cfg))

    def layer(x: jax.Array, p: Params) -> tuple[jax.Array, None]:
        return decoder_layer(p, x, cos, sin, cfg, causal_attention), None

    x, _ = jax.lax.scan(layer, embed(cast, tokens), cast["layers"])
    return logits_of(cast, x, cfg)


def cast_params(params: Params, dtype: jnp.dtype) -> Params:
    """Floating weights in the compute dtype; int8 weights stay int8 (mm widens them)."""
    return jax.tree.map(lambda a: a if a.dtype == jnp.int8 else a.astype(dtype), params)


def loss_fn(params: Params, batch: jax.Array, cfg: ModelConfig, dtype: jnp.dtype) -> jax.Array:
    """Next-token cross-entropy on [B, T + 1] windows."""
    inputs, targets = batch[:, :-1], batch[:, 1:]
    positions = jnp.broadcast_to(jnp.arange(inputs.shape[1]), inputs.shape)
    logits = forward(params, inputs, positions, cfg, dtype)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(log_probs, targets[..., None], axis=-1))
