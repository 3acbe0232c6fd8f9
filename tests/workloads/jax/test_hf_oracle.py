"""meshstack's JAX model against Hugging Face's transformers, the reference implementation: tiny random
Llama-architecture models built and saved by transformers itself (grouped-query attention, tied and
untied embeddings, RoPE scaling off, linear and Llama 3's), read from their folders by meshstack, give
the same fp32 logits (max abs difference at most 1e-4) and the same greedy continuation."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from meshstack.core.model_config import ModelConfig
from meshstack.workloads.jax import hf_config, model_store
from meshstack.workloads.jax.model import forward
from tests.support.hf_models import VARIANTS, hf_greedy, hf_logits, tiny_llama, train_tokenizer

pytest.importorskip("transformers")

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def folder(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tokenizer_folder: Path) -> Path:
    return tiny_llama(tmp_path_factory.mktemp(request.param), tokenizer_folder, seed=1, **VARIANTS[request.param])


def ours_greedy(params: dict, cfg: ModelConfig, prompt: list[int], n: int) -> list[int]:
    """Greedy decoding with the plain forward pass: one compiled length, the sequence padded after."""
    length = len(prompt) + n
    run = jax.jit(lambda p, t: forward(p, t, jnp.arange(length)[None], cfg))
    tokens = list(prompt)
    for _ in range(n):
        padded = np.zeros((1, length), np.int32)
        padded[0, : len(tokens)] = tokens
        tokens.append(int(np.asarray(run(params, padded))[0, len(tokens) - 1].argmax()))
    return tokens[len(prompt) :]


def test_the_same_logits_as_transformers(folder: Path) -> None:
    loaded = model_store.load_hf_folder(str(folder))
    ids = np.random.default_rng(0).integers(0, loaded.cfg.vocab_size, (2, 96))
    positions = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
    ours = np.asarray(forward(loaded.params, ids, positions, loaded.cfg))
    reference = hf_logits(folder, ids)
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() <= TOLERANCE


def test_the_same_greedy_continuation_as_transformers(folder: Path) -> None:
    loaded = model_store.load_hf_folder(str(folder))
    prompt = loaded.tokenizer.encode("def read_config(path):\n    ")
    reference = hf_greedy(folder, prompt, 16)
    assert ours_greedy(loaded.params, loaded.cfg, prompt, len(reference)) == reference


def test_config_json_maps_onto_model_config_key_for_key(folder: Path) -> None:
    cfg, raw = hf_config.read_config(folder)
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"):
        assert getattr(cfg, key) == raw[key]
    assert cfg.kv_heads == raw["num_key_value_heads"]
    assert cfg.tie_word_embeddings == raw["tie_word_embeddings"]
    assert cfg.rms_norm_eps == raw["rms_norm_eps"]
    rope = raw.get("rope_parameters") or {}
    assert cfg.rope_theta == rope.get("rope_theta", raw.get("rope_theta"))
    kind = rope.get("rope_type", "default")
    assert (cfg.rope_scaling is None) == (kind == "default")


def test_legacy_rope_keys_read_as_transformers_5_writes_them() -> None:
    legacy = {
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 100,
        "rope_theta": 500000,
        "rope_scaling": {
            "rope_type": "llama3",
            "factor": 8,
            "low_freq_factor": 1,
            "high_freq_factor": 4,
            "original_max_position_embeddings": 32,
        },
    }
    new = {**legacy, "rope_parameters": {"rope_theta": 500000.0, **legacy["rope_scaling"]}}
    del new["rope_theta"], new["rope_scaling"]
    assert hf_config.config_from_hf(legacy) == hf_config.config_from_hf(new)
    assert hf_config.config_from_hf(legacy).max_position_embeddings == 2048  # LlamaConfig's default where absent
    assert hf_config.config_from_hf(legacy).tie_word_embeddings is False
