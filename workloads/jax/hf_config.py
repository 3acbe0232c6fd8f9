"""Hugging Face's config.json (and generation_config.json) into meshstack's ModelConfig and back out.

What is read is checked before any of it is used, and each refusal is one line naming the file and the
key: an architecture meshstack does not build (with the ones it does), a config.json field out of range.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from meshstack.core.model_config import ModelConfig

CONFIG = "config.json"
GENERATION_CONFIG = "generation_config.json"
SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM")
MODEL_TYPES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM"}
SUPPORTED_ROPE = ("default", "linear", "llama3")
# LlamaConfig's defaults: what a config.json that leaves a key out means.
HF_DEFAULTS: dict[str, Any] = {
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": None,
    "head_dim": None,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "rope_theta": 10000.0,
}


class ModelFolderError(ValueError):
    """A model folder meshstack cannot load: the message names the file and the key or tensor."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def token_ids(value: Any) -> list[int]:
    """eos_token_id as config files hold it: one id, a list of them, or null."""
    if _is_int(value):
        return [int(value)]
    if isinstance(value, list) and all(_is_int(v) for v in value):
        return [int(v) for v in value]
    return []


def _rope(data: dict[str, Any], where: str) -> tuple[Any, Any]:
    """(rope_theta, rope_scaling) from the legacy keys or transformers 5's rope_parameters."""
    params = data.get("rope_parameters")
    if isinstance(params, dict):
        theta = params.get("rope_theta", data.get("rope_theta", HF_DEFAULTS["rope_theta"]))
        scaling: Any = {k: v for k, v in params.items() if k != "rope_theta"}
        key = "rope_parameters"
    else:
        theta = data.get("rope_theta", HF_DEFAULTS["rope_theta"])
        scaling = data.get("rope_scaling")
        key = "rope_scaling"
    if scaling is None:
        return theta, None
    if not isinstance(scaling, dict):
        raise ModelFolderError(f"{where}: {key} must be an object")
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind not in SUPPORTED_ROPE:
        raise ModelFolderError(
            f"{where}: {key}.rope_type {kind!r} is not supported (meshstack applies {', '.join(SUPPORTED_ROPE)})"
        )
    if kind == "default":
        return theta, None
    fields = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
    out = {"rope_type": kind, **{k: scaling[k] for k in fields if k in scaling}}
    if kind == "llama3" and isinstance(out.get("original_max_position_embeddings"), float):
        out["original_max_position_embeddings"] = int(out["original_max_position_embeddings"])
    return theta, out


def config_from_hf(data: Any, where: str = CONFIG) -> ModelConfig:
    """A config.json's model as meshstack's ModelConfig; ModelFolderError names the key at fault."""
    if not isinstance(data, dict):
        raise ModelFolderError(f"{where}: must be a JSON object")
    architectures = data.get("architectures")
    supported = ", ".join(SUPPORTED_ARCHITECTURES)
    if architectures is not None:
        if not isinstance(architectures, list) or not architectures:
            raise ModelFolderError(f"{where}: architectures must be a list naming the model class")
        if not any(a in SUPPORTED_ARCHITECTURES for a in architectures):
            named = ", ".join(str(a) for a in architectures)
            raise ModelFolderError(f"{where}: architectures {named} is not supported (meshstack builds {supported})")
    elif data.get("model_type") not in MODEL_TYPES:
        raise ModelFolderError(
            f"{where}: model_type {data.get('model_type')!r} is not supported (meshstack builds {supported})"
        )
    if data.get("hidden_act", "silu") != "silu":
        raise ModelFolderError(f"{where}: hidden_act {data['hidden_act']!r} is not supported (SwiGLU's silu only)")
    for key in ("attention_bias", "mlp_bias"):
        if data.get(key, False) is not False:
            raise ModelFolderError(f"{where}: {key} {data[key]!r} is not supported (Llama's layers have no biases)")
    window = data.get("sliding_window")
    if window is not None and (not _is_int(window) or window < data.get("max_position_embeddings", 0)):
        raise ModelFolderError(f"{where}: sliding_window {window!r} is not supported (full attention only)")
    theta, scaling = _rope(data, where)
    fields = {key: data.get(key, default) for key, default in HF_DEFAULTS.items()}
    fields["rope_theta"] = float(theta) if _is_int(theta) else theta
    fields["rope_scaling"] = scaling
    for key in ("rms_norm_eps",):
        if _is_int(fields[key]):
            fields[key] = float(fields[key])
    try:
        return ModelConfig.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = [str(p) for p in error["loc"]]
        context = error.get("ctx") or {}
        if "field" in context:
            loc.append(str(context["field"]))
        key = ".".join(loc)
        shown = data.get(loc[0]) if loc and loc[0] in data else None
        value = f" {shown!r}" if shown is not None and not isinstance(shown, dict) else ""
        raise ModelFolderError(f"{where}: {key}{value}: {error['msg']}") from None


def config_to_hf(cfg: ModelConfig, bos: int | None = None, eos: list[int] | None = None) -> dict[str, Any]:
    """config.json for a model meshstack built: LlamaForCausalLM, rope in the keys every reader takes."""
    out: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.kv_heads,
        "head_dim": cfg.head_size,
        "max_position_embeddings": cfg.max_position_embeddings,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": None if cfg.rope_scaling is None else cfg.rope_scaling.model_dump(exclude_none=True),
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": "float32",
    }
    if bos is not None:
        out["bos_token_id"] = bos
    if eos:
        out["eos_token_id"] = eos[0] if len(eos) == 1 else eos
    return out


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFolderError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFolderError(f"{path}: not valid JSON ({exc})") from None


def read_config(folder: Path) -> tuple[ModelConfig, dict[str, Any]]:
    raw = read_json(folder / CONFIG)
    return config_from_hf(raw, str(folder / CONFIG)), raw


def model_eos(folder: Path, raw: dict[str, Any]) -> list[int]:
    """The ids that end a completion: config.json's eos_token_id and generation_config.json's."""
    ids = token_ids(raw.get("eos_token_id"))
    generation = folder / GENERATION_CONFIG
    if generation.is_file():
        data = read_json(generation)
        if isinstance(data, dict):
            ids += [i for i in token_ids(data.get("eos_token_id")) if i not in ids]
    return ids
