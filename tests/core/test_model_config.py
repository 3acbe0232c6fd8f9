"""ModelConfig in Hugging Face's LlamaConfig names, with the old names still read; and a model folder
read from object storage (s3://, gs://) as from a local path."""

from __future__ import annotations

from pathlib import Path

import fsspec
import jax
import numpy as np
import pytest

from meshstack.core.model_config import ModelConfig
from meshstack.workloads.jax import model_store


def test_the_old_field_names_are_read_as_the_new() -> None:
    old = ModelConfig.model_validate({"d_model": 128, "n_layers": 3, "n_heads": 4, "d_ff": 512, "max_seq_len": 256})
    new = ModelConfig(
        hidden_size=128, num_hidden_layers=3, num_attention_heads=4, intermediate_size=512, max_position_embeddings=256
    )
    assert old == new
    with pytest.raises(ValueError, match="d_model is the old name of hidden_size: give one of them"):
        ModelConfig.model_validate({"d_model": 128, "hidden_size": 128})


def test_grouped_query_attention_is_checked() -> None:
    with pytest.raises(ValueError, match="num_attention_heads 4 is not a multiple of num_key_value_heads 3"):
        ModelConfig(num_key_value_heads=3)
    cfg = ModelConfig(num_key_value_heads=2, tie_word_embeddings=False)
    assert cfg.kv_heads == 2 and cfg.head_size == 16
    assert cfg.param_count() == 2 * 260 * 64 + 64 + 2 * (64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 256 + 2 * 64)


def test_a_model_folder_on_object_storage_is_read_as_a_local_one(
    hf_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = fsspec.filesystem("memory")
    for f in hf_model.iterdir():
        memory.pipe(f"/bucket/models/tiny/{f.name}", f.read_bytes())
    memory.pipe("/bucket/models/tiny/README.bin", b"not part of a model folder")

    def fake(uri: str) -> tuple[object, str]:
        assert uri.startswith("s3://bucket/models/tiny")
        return memory, "/" + uri.removeprefix("s3://")

    monkeypatch.setattr(model_store, "filesystem", fake)
    monkeypatch.setenv(model_store.CACHE_ENV, str(tmp_path / "cache"))
    uri = "s3://bucket/models/tiny"
    assert model_store.is_hf_folder(uri)
    remote = model_store.load_hf_folder(uri)
    local = model_store.load_hf_folder(str(hf_model))
    assert remote.cfg == local.cfg and remote.source == uri
    same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), remote.params, local.params)
    assert all(jax.tree.leaves(same))
    [cached] = list((tmp_path / "cache").iterdir())
    assert "README.bin" not in {p.name for p in cached.iterdir()}
    assert remote.tokenizer.encode("Return the") == local.tokenizer.encode("Return the")
    memory.rm("/bucket", recursive=True)


def test_a_server_whose_stack_declares_another_model_than_its_weights_refuses(hf_model: Path) -> None:
    from meshstack.workloads.jax import hf_config

    found, _ = hf_config.read_config(hf_model)
    with pytest.raises(
        hf_config.ModelFolderError, match=r"config.json: model.vocab_size is 260 but the weights' is 384"
    ):
        model_store.load_served(str(hf_model), ModelConfig(), declared=ModelConfig())
    shorter = found.model_copy(update={"max_position_embeddings": 64})
    assert model_store.load_served(str(hf_model), ModelConfig(), declared=shorter).cfg == shorter
