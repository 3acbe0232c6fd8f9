"""How much memory and time a transformer needs: the one model `meshstack plan`, validation and the
cost report share. Every formula is a published one (the README lists them with their sources):

- training compute: 6 N D FLOPs for N parameters and D tokens (Kaplan et al. 2020; Hoffmann et al.
  2022), run at a stated model-FLOPs utilisation (MFU) of the accelerator's dense peak;
- training state: 16 bytes per parameter for mixed-precision Adam — 2 (bf16 weights) + 2 (bf16
  gradients) + 12 (fp32 master weights, momentum and variance) (Rajbhandari et al. 2020, ZeRO) —
  sharded over the devices that hold it (FSDP / ZeRO-3);
- activations: s b h (34 + 5 a s / h) bytes per layer in 16-bit (Korthikanti et al. 2022), divided
  by the tensor-parallel degree; 2 s b h per layer when every layer is recomputed;
- serving: weights at the serving precision plus a KV cache of 2 layers kv_heads head_dim bytes per
  token; a decoding step reads all weights and the batch's cache from memory, so its time is those
  bytes over the memory bandwidth unless the 2 N FLOPs per token take longer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from meshstack.core.model_config import ModelConfig

Precision = Literal["fp32", "bf16", "fp8", "int8"]
PRECISION_BYTES: dict[str, int] = {"fp32": 4, "bf16": 2, "fp8": 1, "int8": 1}
ADAM_MOMENTS_BYTES = 8  # Adam's momentum and variance, fp32
MASTER_WEIGHTS_BYTES = 4  # the fp32 copy mixed precision keeps beside lower-precision weights
PLANNING_MFU = 0.4  # the stated assumption of `plan`, the preview's training runs and the grace period
USABLE_MEMORY = 0.9  # what a framework can allocate of an accelerator's memory (workspace, fragmentation)
GIB = 2**30


@dataclass(frozen=True)
class Transformer:
    """A decoder-only transformer as the formulas need it."""

    params: float
    layers: int
    d_model: int
    heads: int
    kv_heads: int
    vocab: int
    d_ff: int = 0  # the feed-forward width, where known (a stack file needs it)
    # "llama": the architecture meshstack's trainer and server build (ModelConfig); "gpt": GPT-3's
    # (learned positions, a two-matrix GELU MLP, biases), which only the formulas take.
    family: str = "llama"
    tied: bool = False  # the output layer shares the embedding's weights
    head_dim_override: int = 0  # where a model's head dimension is not d_model / heads

    @property
    def head_dim(self) -> int:
        return self.head_dim_override or self.d_model // self.heads

    def kv_bytes_per_token(self, kv_bytes: int = 2) -> float:
        return 2 * self.layers * self.kv_heads * self.head_dim * kv_bytes


def of_model(cfg: ModelConfig) -> Transformer:
    """meshstack's own model (workloads/jax/model.py), grouped-query attention's key/value heads included."""
    return Transformer(
        cfg.param_count(),
        cfg.num_hidden_layers,
        cfg.hidden_size,
        cfg.num_attention_heads,
        cfg.kv_heads,
        cfg.vocab_size,
        cfg.intermediate_size,
        tied=cfg.tie_word_embeddings,
        head_dim_override=cfg.head_dim or 0,
    )


def model_config(model: Transformer, max_position_embeddings: int = 4096) -> ModelConfig:
    """The ModelConfig meshstack's trainer builds for a Llama-family shape (a preset, a planned model)."""
    if model.family != "llama":
        raise ValueError(f"a {model.family} model is not one meshstack's trainer builds (the Llama family only)")
    return ModelConfig(
        vocab_size=model.vocab,
        hidden_size=model.d_model,
        num_hidden_layers=model.layers,
        num_attention_heads=model.heads,
        num_key_value_heads=model.kv_heads,
        head_dim=model.head_dim_override or None,
        intermediate_size=model.d_ff,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=model.tied,
    )


# Shapes from the models' papers and model cards (Touvron et al. 2023 for Llama 2; Meta's Llama 3
# and 3.1 model cards; Brown et al. 2020 for GPT-3). The Llama presets build as meshstack's model
# (tests/planner/test_presets.py counts their parameters against these published figures).
PRESETS: dict[str, Transformer] = {
    "llama-2-7b": Transformer(6.74e9, 32, 4096, 32, 32, 32000, 11008),
    "llama-2-13b": Transformer(13.0e9, 40, 5120, 40, 40, 32000, 13824),
    "llama-2-70b": Transformer(68.98e9, 80, 8192, 64, 8, 32000, 28672),
    "llama-3-8b": Transformer(8.03e9, 32, 4096, 32, 8, 128256, 14336),
    "llama-3-70b": Transformer(70.55e9, 80, 8192, 64, 8, 128256, 28672),
    "llama-3.1-405b": Transformer(405.8e9, 126, 16384, 128, 8, 128256, 53248),
    "gpt-3-175b": Transformer(175e9, 96, 12288, 96, 96, 50257, 49152, family="gpt"),
}


def kv_cache_rows(model: Transformer, max_seq_len: int, kv_bytes: int, max_batch: int, budget_gib: float | None) -> int:
    """The serving engine's KV rows (one request each, max_seq_len positions): max_batch, or as many as
    `budget_gib` holds, at most max_batch. The engine sizes its cache here and validation checks the
    same figure, so a spec that passes never fails the server's start."""
    if budget_gib is None:
        return max_batch
    per_row = model.kv_bytes_per_token(kv_bytes) * max_seq_len
    fits = int(budget_gib * GIB // per_row)
    if fits < 1:
        raise ValueError(
            f"holds no request: one needs {per_row / GIB:.4f} GiB of KV cache ({model.layers} layers x "
            f"{max_seq_len} positions)"
        )
    return min(max_batch, fits)


def weights_bytes(model: Transformer, precision: str) -> float:
    return model.params * PRECISION_BYTES[precision]


def training_state_bytes(model: Transformer, precision: str) -> float:
    """Weights and gradients at the compute precision, Adam's moments and, below fp32, fp32 master
    weights: 16 bytes a parameter in bf16 (2 + 2 + 8 + 4) and in fp32 (4 + 4 + 8)."""
    master = MASTER_WEIGHTS_BYTES if precision != "fp32" else 0
    return model.params * (2 * PRECISION_BYTES[precision] + ADAM_MOMENTS_BYTES + master)


def activation_bytes(
    model: Transformer,
    seq_len: int,
    micro_batch: int,
    tensor: int = 1,
    recompute: bool = False,
    precision: str = "bf16",
) -> float:
    """Activations one device keeps for the backward pass of its micro batch (Korthikanti et al. 2022)."""
    s, b, h, a = seq_len, micro_batch, model.d_model, model.heads
    scale = PRECISION_BYTES[precision] / 2  # the paper counts 16-bit activations
    if recompute:
        # layer inputs only, plus one layer's full activations while it is recomputed
        per_layer, extra = 2 * s * b * h, s * b * h * (34 + 5 * a * s / h) / tensor
        return (model.layers * per_layer + extra) * scale
    return model.layers * s * b * h * (34 + 5 * a * s / h) / tensor * scale


@dataclass(frozen=True)
class TrainingFit:
    """What one device holds when `devices` devices shard the state and `tensor` of them split each layer."""

    state_gib: float
    activation_gib: float
    recompute: bool
    tensor: int

    @property
    def per_device_gib(self) -> float:
        return self.state_gib + self.activation_gib


def training_fit(
    model: Transformer,
    precision: str,
    devices: int,
    seq_len: int,
    micro_batch: int,
    device_gib: float,
    tensors: tuple[int, ...] = (1, 2, 4, 8),
) -> TrainingFit:
    """The cheapest layout that fits a device (no recompute before recompute, smaller tensor degree
    first); if none fits, the smallest footprint, which the caller reports as not fitting."""
    candidates = []
    for recompute in (False, True):
        for tensor in tensors:
            if tensor > devices or model.heads % tensor or model.kv_heads % tensor:
                continue
            fit = TrainingFit(
                training_state_bytes(model, precision) / devices / GIB,
                activation_bytes(model, seq_len, micro_batch, tensor, recompute, precision) / GIB,
                recompute,
                tensor,
            )
            if fit.per_device_gib <= device_gib * USABLE_MEMORY:
                return fit
            candidates.append(fit)
    return min(candidates, key=lambda f: f.per_device_gib)


def training_flops(model: Transformer, tokens: float) -> float:
    return 6 * model.params * tokens


def training_seconds(
    model: Transformer, tokens: float, devices: int, peak_tflops: float, mfu: float, recompute: bool
) -> float:
    """6 N D at `mfu` of the devices' peak; recomputing every layer adds a forward pass (8 N D of work)."""
    work = training_flops(model, tokens) * (8 / 6 if recompute else 1)
    return work / (devices * peak_tflops * 1e12 * mfu)


# What a node's network delivers of its line rate to a collective (NCCL or XLA over EFA, gVNIC or plain
# Ethernet): an assumption the planner states.
NETWORK_EFFICIENCY = 0.7
# Collectives per step of fully sharded data parallelism (ZeRO-3 / FSDP): all-gather the weights for the
# forward and again for the backward pass, reduce-scatter the gradients.
FSDP_COLLECTIVES = 3


def interconnect_seconds_per_step(model: Transformer, nodes: int, network_gbps: float) -> float:
    """What one training step spends moving state between nodes when the weights are sharded over all of
    them: each node sends and receives (nodes - 1) / nodes of the bf16 weights per collective, at the
    node's network rate times NETWORK_EFFICIENCY. Within a node (NVLink, ICI) nothing is counted."""
    if nodes <= 1:
        return 0.0
    volume = FSDP_COLLECTIVES * weights_bytes(model, "bf16") * (nodes - 1) / nodes
    return volume * 8 / (network_gbps * 1e9 * NETWORK_EFFICIENCY)


def gradient_seconds_per_step(model: Transformer, slices: int, hosts_per_slice: int, network_gbps: float) -> float:
    """Data parallelism across TPU slices (DCN): each slice's hosts all-reduce their share of the bf16
    gradients with the other slices, two transfers of (slices - 1) / slices of it per step."""
    if slices <= 1:
        return 0.0
    share = weights_bytes(model, "bf16") / max(hosts_per_slice, 1)
    return 2 * share * (slices - 1) / slices * 8 / (network_gbps * 1e9 * NETWORK_EFFICIENCY)


# A host's parallel writes to object storage, assumed for the grace period before anything is
# measured; conservative for S3 and GCS (a single stream does about 100 MB/s, orbax writes many).
# The trainer reports each save's measured time (`save_s`, meshstack_train_checkpoint_save_seconds)
# and warns when one takes over half the grace period.
CHECKPOINT_WRITE_BYTES_PER_S = 200e6
CHECKPOINT_STATE_BYTES = 12  # meshstack's trainer keeps fp32 weights and two fp32 Adam moments
GRACE_MARGIN_S = 30  # the kubelet's own delays, the process exit and a slow step
# JAX's SIGTERM notifier looks for the signal once a second; then every process runs on to one step
# past the fastest one's (xla/tsl preemption_sync_manager.cc: the sync point is the max counter + 1).
SIGTERM_NOTICE_S = 1
MIN_GRACE_S = 60


def preemption_grace_seconds(
    model: Transformer, step_tokens: float, devices: int, processes: int, peak_tflops: float, mfu: float
) -> int:
    """How long a SIGTERM'd trainer needs to reach the agreed step and save: the pod's termination grace.

    The notice, the step in progress and the one after it at `mfu` of the peak, plus the host's
    share of the state (sharded over the processes) written at CHECKPOINT_WRITE_BYTES_PER_S, plus a
    margin."""
    step = training_seconds(model, step_tokens, devices, peak_tflops, mfu, False) if peak_tflops else 0.0
    save = model.params * CHECKPOINT_STATE_BYTES / max(processes, 1) / CHECKPOINT_WRITE_BYTES_PER_S
    return max(MIN_GRACE_S, math.ceil(SIGTERM_NOTICE_S + 2 * step + save + GRACE_MARGIN_S))


@dataclass(frozen=True)
class Decoding:
    """One replica serving `batch` requests at once."""

    batch: int
    latency_s: float
    requests_per_s: float
    per_device_gib: float
    ttft_s: float = 0.0  # the prompt's prefill: time to first token
    tpot_s: float = 0.0  # one decoding step of the batch: time per output token


def serving(
    model: Transformer,
    precision: str,
    devices: int,
    device_gib: float,
    memory_gbps: float,
    peak_tflops: float,
    prompt_tokens: int,
    output_tokens: int,
    latency_budget_s: float,
    mfu: float,
    kv_bytes: int = 2,
    ttft_s: float | None = None,
    tpot_s: float | None = None,
) -> Decoding | None:
    """The largest batch whose cache fits beside the weights and whose modeled latency stays within
    the budget, with its time to first token (the prompt's prefill) and time per output token (one
    decoding step of the batch) within their targets where given; None when not even one request does.
    Weights and cache are split over `devices` (tensor parallel within the replica)."""
    weights = weights_bytes(model, precision)
    usable = devices * device_gib * GIB * USABLE_MEMORY
    per_request = model.kv_bytes_per_token(kv_bytes) * (prompt_tokens + output_tokens)
    most = math.floor((usable - weights) / per_request) if usable > weights else 0
    best = None
    for batch in _batches(most):
        prefill, step = _prefill_and_step(
            model, precision, devices, memory_gbps, peak_tflops, prompt_tokens, batch, mfu, per_request
        )
        latency = prefill + output_tokens * step
        if (
            latency > latency_budget_s
            or (ttft_s is not None and prefill > ttft_s)
            or (tpot_s is not None and step > tpot_s)
        ):
            break
        best = Decoding(batch, latency, batch / latency, (weights + batch * per_request) / devices / GIB, prefill, step)
    return best


def _batches(most: int) -> list[int]:
    sizes, b = [], 1
    while b <= most:
        sizes.append(b)
        b *= 2
    if most >= 1 and (not sizes or sizes[-1] != most):
        sizes.append(most)
    return sizes


def _prefill_and_step(
    model: Transformer,
    precision: str,
    devices: int,
    memory_gbps: float,
    peak_tflops: float,
    prompt_tokens: int,
    batch: int,
    mfu: float,
    per_request: float,
) -> tuple[float, float]:
    """Prefill is compute bound (2 N per prompt token); each decoding step reads the weights and the
    batch's cache once, or is compute bound at 2 N per token of the batch, whichever is slower."""
    compute = devices * peak_tflops * 1e12 * mfu
    prefill = 2 * model.params * prompt_tokens / compute
    read = (weights_bytes(model, precision) + batch * per_request / 2) / (devices * memory_gbps * 1e9)
    step = max(read, 2 * model.params * batch / compute)
    return prefill, step
