"""The workload entry of an emitted stack: the model's shape, and meshstack's trainer over a mesh that
divides it, or a server (meshstack's own on one device, vLLM tensor parallel over several)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from meshstack.core import sizing
from meshstack.core.engines import vllm
from meshstack.planner.access import EmitError
from meshstack.planner.options import Option, PlanRequest


def model_config(request: PlanRequest) -> dict[str, Any]:
    model = request.model
    if not model.d_ff:
        raise EmitError("the stack file needs the feed-forward width: give --d-ff or a --preset")
    seq = request.seq_len if request.mode == "train" else request.prompt_tokens + request.output_tokens
    if model.family != "llama":
        raise EmitError(
            f"a {model.family} model is not one meshstack's trainer and server build (the Llama family only)"
        )
    out = {
        "vocab_size": model.vocab,
        "hidden_size": model.d_model,
        "num_hidden_layers": model.layers,
        "num_attention_heads": model.heads,
        "num_key_value_heads": model.kv_heads,
        "intermediate_size": model.d_ff,
        "max_position_embeddings": seq,
        "tie_word_embeddings": model.tied,
    }
    if model.head_dim_override:
        out["head_dim"] = model.head_dim_override
    return out


def meshes_of(devices: int, tensor: int, d_model: int, d_ff: int, heads: int, kv_heads: int) -> list[dict[str, int]]:
    """(data, fsdp, tensor) layouts over `devices` whose axes divide the model, widest FSDP first."""
    out = []
    for t in (tensor, 2 * tensor, 4 * tensor, 8 * tensor):
        if t > 8 or devices % t or heads % t or kv_heads % t or d_ff % t:
            continue
        ranks = devices // t
        for fsdp in sorted((f for f in range(1, ranks + 1) if ranks % f == 0), reverse=True):
            if d_model % fsdp == 0 and d_ff % fsdp == 0:
                out.append({"data": ranks // fsdp, "fsdp": fsdp, "tensor": t})
    return out


def training_entry(name: str, request: PlanRequest, mesh: Mapping[str, int], image: str) -> dict[str, Any]:
    ranks = mesh["data"] * mesh["fsdp"]
    global_batch = math.ceil(request.global_batch / ranks) * ranks
    steps = math.ceil(request.tokens / (global_batch * request.seq_len))
    return {
        "train": {
            "steps": steps,
            "global_batch": global_batch,
            "seq_len": request.seq_len,
            "micro_batches": global_batch // ranks,
            "learning_rate": 0.0003,
            "warmup_steps": min(2000, max(steps // 100, 1)),
            "compute_dtype": "bfloat16",
            "checkpoint_every": max(min(1000, steps // 20), 1),
            "keep_checkpoints": 3,
            "log_every": 10,
        },
        "data": {"bucket": "data", "prefix": "tokens"},
        "checkpoints": {"bucket": "checkpoints", "prefix": name},
        "image": image,
    }


# What the planner's int8 (weight-only, one scale per output channel) is called in vLLM v0.34.0.
VLLM_QUANTIZATION = {"int8": "int8_per_channel_weight_only"}


def mirrored(image: str, upstream: str) -> str:
    """`upstream` beside `image` in the registry it comes from (the same host, and the same project and
    repository where the registry has them, as Artifact Registry does): where a stack whose pack pins
    registries pulls it."""
    first = image.split("/", 1)[0]
    if "." not in first and ":" not in first:
        return upstream
    repository = image.split("@", 1)[0].rsplit("/", 1)[0] if "/" in image else first
    return f"{repository}/{upstream}"


def serving_entry(name: str, request: PlanRequest, option: Option, image: str) -> dict[str, Any]:
    """meshstack's server where one device holds a replica; vLLM (tensor parallel over the replica's
    devices) where the model needs several, as for a 70B model: meshstack's server serves only its own
    checkpoints, and a model that large is one a team brings."""
    replicas, devices = int(option.layout["replicas"]), int(option.layout["devices_per_replica"])
    scale = {"devices_per_replica": devices, "min_replicas": 1, "max_replicas": replicas}
    if devices == 1:
        serve: dict[str, Any] = {"max_batch_size": int(option.layout["batch"]), "max_new_tokens": request.output_tokens}
        if request.quantization:
            serve["quantization"] = request.quantization
        return {
            "kind": "inference",
            "image": image,
            "checkpoints": {"bucket": "checkpoints", "prefix": name},
            **scale,
            "serve": serve,
        }
    settings: dict[str, Any] = {"max_num_seqs": int(option.layout["batch"])}
    if request.quantization:
        settings["quantization"] = VLLM_QUANTIZATION[request.quantization]
    precision = request.quantization or ("bf16" if request.precision == "fp32" else request.precision)
    return {
        "kind": "inference",
        "engine": "vllm",
        "image": mirrored(image, vllm.facts().images["gpu"]),
        "weights": {"bucket": "checkpoints", "prefix": f"models/{name}"},
        # The planned model's own size (its attention's KV heads included), which the shape the stack file
        # takes (meshstack's multi-head model) would overstate.
        "weights_gib": round(sizing.weights_bytes(request.model, precision) / sizing.GIB, 1),
        **scale,
        "vllm": settings,
    }
