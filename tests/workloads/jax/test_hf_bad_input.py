"""A model folder meshstack cannot serve is refused before anything listens: `meshstack serve` says
in one line which file and which tensor or key, and exits 2. Each case starts from a good folder
transformers saved and breaks one thing."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from meshstack.workloads.jax import hf_config, hf_weights
from tests.support.hf_models import edit_config, meshstack, refused_by_serve, save, tensors, tiny_llama

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow


def missing_tensor(folder: Path) -> None:
    named = tensors(folder)
    del named["model.layers.1.mlp.up_proj.weight"]
    save(folder, named)


def mismatched_tensor(folder: Path) -> None:
    named = tensors(folder)
    named["model.layers.0.self_attn.k_proj.weight"] = np.zeros((8, 64), np.float32)
    save(folder, named)


def nan_weights(folder: Path) -> None:
    named = tensors(folder)
    named["model.layers.1.self_attn.o_proj.weight"][3, 5] = np.nan
    save(folder, named)


def inf_weights(folder: Path) -> None:
    named = tensors(folder)
    named["model.norm.weight"][0] = np.inf
    save(folder, named)


def sharded_with_a_shard_gone(folder: Path) -> None:
    named = tensors(folder)
    (folder / hf_weights.SINGLE).unlink()
    from safetensors.numpy import save_file

    names = sorted(named)
    weight_map = {
        n: ("model-00001-of-00002.safetensors" if i % 2 else "model-00002-of-00002.safetensors")
        for i, n in enumerate(names)
    }
    save_file(
        {n: named[n] for n in names if weight_map[n].startswith("model-00001")},
        str(folder / "model-00001-of-00002.safetensors"),
        metadata={"format": "pt"},
    )
    (folder / hf_weights.INDEX).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def unsupported_architecture(folder: Path) -> None:
    edit_config(folder, architectures=["Qwen2ForCausalLM"], model_type="qwen2")


def field_out_of_range(folder: Path) -> None:
    edit_config(folder, num_key_value_heads=3)


def negative_eps(folder: Path) -> None:
    edit_config(folder, rms_norm_eps=-1.0)


def unsupported_rope(folder: Path) -> None:
    config = json.loads((folder / hf_config.CONFIG).read_text())
    config["rope_parameters"] = {"rope_type": "yarn", "factor": 4.0, "rope_theta": 10000.0}
    (folder / hf_config.CONFIG).write_text(json.dumps(config))


def tokenizer_larger_than_the_model(folder: Path) -> None:
    # A model of 300 ids with the tokenizer of 384: ids past the embedding would be looked up.
    named = tensors(folder)
    named["model.embed_tokens.weight"] = named["model.embed_tokens.weight"][:300].copy()
    named["lm_head.weight"] = named["lm_head.weight"][:300].copy()
    save(folder, named)
    edit_config(folder, vocab_size=300)


CASES: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "a missing tensor": (missing_tensor, ["model.safetensors", "model.layers.1.mlp.up_proj.weight", "missing"]),
    "a tensor of the wrong shape": (
        mismatched_tensor,
        ["model.safetensors", "model.layers.0.self_attn.k_proj.weight", "shape [8, 64]", "config.json says [32, 64]"],
    ),
    "NaN weights": (nan_weights, ["model.safetensors", "model.layers.1.self_attn.o_proj.weight", "NaN"]),
    "infinite weights": (inf_weights, ["model.safetensors", "model.norm.weight", "infinite"]),
    "a shard the index names is not there": (
        sharded_with_a_shard_gone,
        [hf_weights.INDEX, "model-00002-of-00002.safetensors", "not in the folder"],
    ),
    "an architecture meshstack does not build": (
        unsupported_architecture,
        ["config.json", "Qwen2ForCausalLM is not supported", "LlamaForCausalLM, MistralForCausalLM"],
    ),
    "a config.json field out of range": (
        field_out_of_range,
        ["config.json", "num_key_value_heads", "not a multiple of num_key_value_heads 3"],
    ),
    "a negative rms_norm_eps": (negative_eps, ["config.json", "rms_norm_eps -1.0", "greater than 0"]),
    "a rope meshstack does not apply": (unsupported_rope, ["config.json", "rope_parameters.rope_type 'yarn'"]),
    "a tokenizer whose vocabulary is not the model's": (
        tokenizer_larger_than_the_model,
        ["tokenizer.json", "384 tokens", "vocab_size is 300"],
    ),
}


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory, hf_tokenizer: Path) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("good"), hf_tokenizer, seed=4, num_key_value_heads=2)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_folder_is_one_line_and_exit_2_and_nothing_serves(case: str, good: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(good, folder)
    damage, expected = CASES[case]
    damage(folder)
    line = refused_by_serve(folder)
    assert all(part in line for part in expected), line


def test_a_folder_that_is_not_there_is_refused_too(tmp_path: Path) -> None:
    done = meshstack("serve", str(tmp_path / "nothing"), "--port", "1")
    assert done.returncode == 2 and "no checkpoint at" in done.stderr
