"""Hugging Face's weights, both ways: *.safetensors (one file, or shards named by
model.safetensors.index.json) into meshstack's parameter tree, and back out.

What is read is checked before any of it is used, and each refusal is one line naming the file and the
tensor: a tensor missing, unexpected or of the wrong shape, a weight that is NaN or infinite.

Hugging Face's Linear layers store [out, in]; meshstack's matmul weights are [in, out] with the layers
stacked on a leading axis, so each weight is transposed and stacked on the way in, and split and
transposed on the way out. Llama's checkpoints already lay q_proj and k_proj out for rotate-half RoPE,
which is the rotation workloads/jax/model.py applies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from meshstack.core.model_config import ModelConfig
from meshstack.workloads.jax.hf_config import CONFIG, ModelFolderError, read_json

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
# Tensors some checkpoints carry that hold nothing to load (RoPE's frequencies, computed from the config).
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)
LAYER_TENSORS = {
    # meshstack name: (Hugging Face name below model.layers.N., transposed)
    "attn_norm": ("input_layernorm.weight", False),
    "mlp_norm": ("post_attention_layernorm.weight", False),
    "wq": ("self_attn.q_proj.weight", True),
    "wk": ("self_attn.k_proj.weight", True),
    "wv": ("self_attn.v_proj.weight", True),
    "wo": ("self_attn.o_proj.weight", True),
    "w_gate": ("mlp.gate_proj.weight", True),
    "w_up": ("mlp.up_proj.weight", True),
    "w_down": ("mlp.down_proj.weight", True),
}
DEFAULT_SHARD_BYTES = 4 * 2**30


def expected_tensors(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor a Hugging Face checkpoint of this shape holds, with its shape."""
    d, v = cfg.hidden_size, cfg.vocab_size
    q, kv, f = cfg.num_attention_heads * cfg.head_size, cfg.kv_heads * cfg.head_size, cfg.intermediate_size
    shapes = {
        "input_layernorm.weight": (d,),
        "post_attention_layernorm.weight": (d,),
        "self_attn.q_proj.weight": (q, d),
        "self_attn.k_proj.weight": (kv, d),
        "self_attn.v_proj.weight": (kv, d),
        "self_attn.o_proj.weight": (d, q),
        "mlp.gate_proj.weight": (f, d),
        "mlp.up_proj.weight": (f, d),
        "mlp.down_proj.weight": (d, f),
    }
    out = {"model.embed_tokens.weight": (v, d), "model.norm.weight": (d,)}
    for layer in range(cfg.num_hidden_layers):
        out.update({f"model.layers.{layer}.{name}": shape for name, shape in shapes.items()})
    if not cfg.tie_word_embeddings:
        out["lm_head.weight"] = (v, d)
    return out


def weight_files(folder: Path) -> dict[str, Path]:
    """Which file holds each tensor: the index's weight_map, else every tensor of model.safetensors (or of
    the one *.safetensors there is)."""
    from safetensors import safe_open

    index = folder / INDEX
    if index.is_file():
        data = read_json(index)
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(f, str) for f in weight_map.values()):
            raise ModelFolderError(f"{index}: weight_map must map each tensor to its file")
        out = {}
        for name, file in weight_map.items():
            path = folder / file
            if "/" in file or not path.is_file():
                raise ModelFolderError(f"{index}: tensor {name} is in {file}, which is not in the folder")
            out[name] = path
        return out
    files = [folder / SINGLE] if (folder / SINGLE).is_file() else sorted(folder.glob("*.safetensors"))
    if not files:
        raise ModelFolderError(
            f"{folder}: no {SINGLE} and no {INDEX} (meshstack reads safetensors weights, not pytorch_model.bin)"
        )
    if len(files) > 1:
        raise ModelFolderError(f"{folder}: several *.safetensors files and no {INDEX} to say which tensor is where")
    try:
        with safe_open(str(files[0]), framework="numpy") as f:
            names = list(f.keys())
    except Exception as exc:  # safetensors raises its own error type on a bad header
        raise ModelFolderError(f"{files[0]}: not a safetensors file ({exc})") from None
    return dict.fromkeys(names, files[0])


def _tensors(files: dict[str, Path], wanted: dict[str, tuple[int, ...]]) -> Iterator[tuple[str, np.ndarray]]:
    """(name, float32 array) of each wanted tensor, file by file, checked for shape and finiteness."""
    from safetensors import safe_open

    by_file: dict[Path, list[str]] = {}
    for name in wanted:
        by_file.setdefault(files[name], []).append(name)
    for path, names in by_file.items():
        try:
            handle = safe_open(str(path), framework="numpy")
        except Exception as exc:
            raise ModelFolderError(f"{path}: not a safetensors file ({exc})") from None
        with handle as f:
            present = set(f.keys())
            for name in names:
                if name not in present:
                    raise ModelFolderError(f"{path}: tensor {name} is missing (the index names this file)")
                try:
                    array = f.get_tensor(name)
                except Exception as exc:
                    raise ModelFolderError(f"{path}: tensor {name} cannot be read ({exc})") from None
                if tuple(array.shape) != wanted[name]:
                    raise ModelFolderError(
                        f"{path}: tensor {name} has shape {list(array.shape)}; config.json says {list(wanted[name])}"
                    )
                if array.dtype.kind not in "fV" and str(array.dtype) != "bfloat16":
                    raise ModelFolderError(f"{path}: tensor {name} is {array.dtype}, not a floating-point type")
                array = array.astype(np.float32)
                if not np.isfinite(array).all():
                    raise ModelFolderError(f"{path}: tensor {name} holds NaN or infinite values")
                yield name, array


def read_weights(folder: Path, cfg: ModelConfig) -> dict[str, Any]:
    """The folder's weights as meshstack's parameter tree (float32 numpy arrays)."""
    files = weight_files(folder)
    wanted = expected_tensors(cfg)
    for name in wanted:
        if name not in files:
            where = folder / INDEX if (folder / INDEX).is_file() else next(iter(set(files.values())), folder / SINGLE)
            raise ModelFolderError(f"{where}: tensor {name} is missing")
    for name, path in files.items():
        ignored = name.endswith(IGNORED_SUFFIXES) or (name == "lm_head.weight" and cfg.tie_word_embeddings)
        if name not in wanted and not ignored:
            raise ModelFolderError(f"{path}: tensor {name} is not one of a {cfg.num_hidden_layers}-layer Llama's")
    n = cfg.num_hidden_layers
    layers: dict[str, np.ndarray] = {}
    top: dict[str, np.ndarray] = {}
    by_hf = {hf: (ours, transpose) for ours, (hf, transpose) in LAYER_TENSORS.items()}
    for name, array in _tensors(files, wanted):
        if name.startswith("model.layers."):
            layer, rest = name[len("model.layers.") :].split(".", 1)
            ours, transpose = by_hf[rest]
            value = array.T if transpose else array
            if ours not in layers:
                layers[ours] = np.empty((n, *value.shape), np.float32)
            layers[ours][int(layer)] = value
        elif name == "model.embed_tokens.weight":
            top["embed"] = array
        elif name == "model.norm.weight":
            top["final_norm"] = array
        elif name == "lm_head.weight":
            top["lm_head"] = np.ascontiguousarray(array.T)
    if cfg.tie_word_embeddings and "lm_head.weight" in files:
        _check_tied(files["lm_head.weight"], top["embed"])
    return {**top, "layers": layers}


def _check_tied(path: Path, embed: np.ndarray) -> None:
    """A tied model's lm_head.weight, where a checkpoint stores one, must be its embedding: a head of
    its own means the weights are an untied model's and config.json was edited to say otherwise, so
    serving the embedding as the head would answer with another model than the one trained."""
    wanted = {"lm_head.weight": embed.shape}
    for name, head in _tensors({"lm_head.weight": path}, wanted):
        if not np.array_equal(head, embed):
            raise ModelFolderError(
                f"{path}: tensor {name} is not model.embed_tokens.weight, yet {CONFIG} says tie_word_embeddings"
            )


def hf_tensors(params: Any, cfg: ModelConfig) -> Iterator[tuple[str, np.ndarray]]:
    """meshstack's parameter tree as Hugging Face's named tensors ([out, in], one per layer)."""
    host = {k: np.asarray(v, np.float32) for k, v in params.items() if k != "layers"}
    yield "model.embed_tokens.weight", host["embed"]
    for layer in range(cfg.num_hidden_layers):
        for ours, (hf, transpose) in LAYER_TENSORS.items():
            value = np.asarray(params["layers"][ours][layer], np.float32)
            yield f"model.layers.{layer}.{hf}", np.ascontiguousarray(value.T if transpose else value)
    yield "model.norm.weight", host["final_norm"]
    if not cfg.tie_word_embeddings:
        yield "lm_head.weight", np.ascontiguousarray(host["lm_head"].T)


def write_weights(
    folder: Path, params: Any, cfg: ModelConfig, max_shard_bytes: int = DEFAULT_SHARD_BYTES
) -> list[Path]:
    """model.safetensors, or shards model-0000i-of-0000n.safetensors with their index past max_shard_bytes."""
    from safetensors.numpy import save_file

    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name, array in hf_tensors(params, cfg):
        if shards[-1] and size + array.nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = array
        size += array.nbytes
    folder.mkdir(parents=True, exist_ok=True)
    metadata = {"format": "pt"}  # what transformers checks before it loads a safetensors file
    if len(shards) == 1:
        path = folder / SINGLE
        save_file(shards[0], str(path), metadata=metadata)
        return [path]
    written, weight_map, total = [], {}, 0
    for i, shard in enumerate(shards, 1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(folder / name), metadata=metadata)
        written.append(folder / name)
        weight_map.update(dict.fromkeys(shard, name))
        total += sum(a.nbytes for a in shard.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return written


def finite_everywhere(params: Any) -> str | None:
    """The first parameter that is not finite, by its Hugging Face name, or None."""
    names = {"embed": "model.embed_tokens.weight", "final_norm": "model.norm.weight", "lm_head": "lm_head.weight"}
    for key, value in params.items():
        if key == "layers":
            continue
        if not np.isfinite(np.asarray(value)).all():
            return names[key]
    for key, stacked in params.get("layers", {}).items():
        array = np.asarray(stacked)
        for layer in range(array.shape[0]):
            if not np.isfinite(array[layer]).all():
                return f"model.layers.{layer}.{LAYER_TENSORS[key][0]}"
    return None
