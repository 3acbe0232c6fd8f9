"""Hugging Face model folders damaged in every way a disk, a network copy or a person damages them: a
safetensors file truncated, filled with random bytes or deleted, one shard of a sharded model gone, an
index that names a shard or a tensor the folder does not hold, NaN-filled tensors, a tensor of the
wrong shape, a config.json edited so that it no longer describes the weights, tokenizer files broken,
and a bit flipped at any offset of any file (a property test).

Each is refused in one line naming the file, by every entry point that loads a folder: `meshstack
serve`, the cluster's server at its start-up, and the trainer's `init_from`. The format has no
previous step to fall back to (the trainer's own checkpoints do: tests/workloads/jax/test_checkpoint_damage.py), so
nothing is served. It has no checksums either: a flip inside a weight's bytes that leaves it a finite
number is not damage any reader can see (transformers loads it too); what is asserted of it is that
the model loaded is exactly the files' content, never more changed than the one value.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshstack.core.contract import SERVER_COMMAND, TRAINER_COMMAND, JobConfig, ServeJobConfig
from meshstack.core.stack_file import PROJECT_ROOT
from meshstack.workloads.jax import hf_config, hf_weights, model_store
from meshstack.workloads.jax.commands import BAD_INPUT
from meshstack.workloads.local.processes import free_port, process_env, python_module
from tests.support.damage import flip_drawn, halve, randomize, truncate
from tests.support.hf_models import edit_config, refused_by_serve, save, tensors, tiny_llama

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

SHARD = "model-00003-of-00006.safetensors"  # one of the sharded model's six, holding whole tensors


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory, hf_tokenizer: Path) -> dict[str, Path]:
    """The same model saved by transformers in one safetensors file and in six shards with an index."""
    root = tmp_path_factory.mktemp("hf-damage")
    single = tiny_llama(root / "single", hf_tokenizer, seed=4)
    sharded = tiny_llama(root / "sharded", hf_tokenizer, seed=4, max_shard_size="100KB")
    assert sorted(p.name for p in sharded.glob("*.safetensors"))[2] == SHARD and (sharded / hf_weights.INDEX).is_file()
    return {"single": single, "sharded": sharded}


def copy_of(folders: dict[str, Path], kind: str, where: Path) -> Path:
    folder = where / kind
    shutil.copytree(folders[kind], folder)
    return folder


def edit_index(folder: Path, change: Callable[[dict[str, str]], None]) -> None:
    index = json.loads((folder / hf_weights.INDEX).read_text())
    change(index["weight_map"])
    (folder / hf_weights.INDEX).write_text(json.dumps(index))


def another_shard(weight_map: dict[str, str], name: str) -> None:
    """The index moved one tensor to a shard that does not hold it."""
    weight_map[name] = next(f for f in sorted(set(weight_map.values())) if f != weight_map[name])


def nan_filled(folder: Path, file: str) -> None:
    save(folder, {k: np.full_like(v, np.nan) for k, v in tensors(folder, file).items()}, file)


def reshaped(folder: Path, file: str, name: str) -> None:
    named = tensors(folder, file)
    named[name] = named[name][: named[name].shape[0] // 2].copy()
    save(folder, named, file)


def untied_edited_to_tied(folder: Path) -> None:
    edit_config(folder, tie_word_embeddings=True)  # the weights keep their own lm_head


# (the folder damaged, what is done to it, what the one line must say: the file first)
DAMAGES: dict[str, tuple[str, Callable[[Path], None], list[str]]] = {
    "safetensors truncated to half": (
        "single",
        lambda f: halve(f / hf_weights.SINGLE),
        [hf_weights.SINGLE, "not a safetensors file", "not fully covered"],
    ),
    "safetensors truncated to nothing": (
        "single",
        lambda f: truncate(f / hf_weights.SINGLE, 0),
        [hf_weights.SINGLE, "not a safetensors file", "header too small"],
    ),
    "safetensors of random bytes": (
        "single",
        lambda f: randomize(f / hf_weights.SINGLE),
        [hf_weights.SINGLE, "not a safetensors file"],
    ),
    "safetensors deleted": (
        "single",
        lambda f: (f / hf_weights.SINGLE).unlink(),
        ["no model.safetensors and no model.safetensors.index.json"],
    ),
    "a shard truncated": ("sharded", lambda f: halve(f / SHARD), [SHARD, "not a safetensors file"]),
    "a shard of random bytes": ("sharded", lambda f: randomize(f / SHARD), [SHARD, "not a safetensors file"]),
    "a shard deleted": (
        "sharded",
        lambda f: (f / SHARD).unlink(),
        [hf_weights.INDEX, SHARD, "which is not in the folder"],
    ),
    "the index deleted": (
        "sharded",
        lambda f: (f / hf_weights.INDEX).unlink(),
        ["several *.safetensors files and no model.safetensors.index.json"],
    ),
    "the index truncated": ("sharded", lambda f: halve(f / hf_weights.INDEX), [hf_weights.INDEX, "not valid JSON"]),
    "the index names a shard that is not there": (
        "sharded",
        lambda f: edit_index(f, lambda m: m.update({"model.norm.weight": "model-00009-of-00009.safetensors"})),
        [hf_weights.INDEX, "model.norm.weight", "model-00009-of-00009.safetensors", "not in the folder"],
    ),
    "the index puts a tensor in a shard that does not hold it": (
        "sharded",
        lambda f: edit_index(f, lambda m: another_shard(m, "model.norm.weight")),
        ["model-0000", "tensor model.norm.weight is missing (the index names this file)"],
    ),
    "the index leaves a tensor out": (
        "sharded",
        lambda f: edit_index(f, lambda m: m.pop("model.layers.1.self_attn.v_proj.weight")),
        [hf_weights.INDEX, "model.layers.1.self_attn.v_proj.weight is missing"],
    ),
    "the index names a tensor no Llama of this shape has": (
        "sharded",
        lambda f: edit_index(f, lambda m: m.update({"model.layers.7.mlp.up_proj.weight": SHARD})),
        [SHARD, "model.layers.7.mlp.up_proj.weight is not one of a 2-layer Llama's"],
    ),
    "a shard's tensors NaN-filled": ("sharded", lambda f: nan_filled(f, SHARD), [SHARD, "holds NaN or infinite"]),
    "every tensor NaN-filled": (
        "single",
        lambda f: nan_filled(f, hf_weights.SINGLE),
        [hf_weights.SINGLE, "holds NaN or infinite"],
    ),
    "a tensor of the wrong shape in a shard": (
        "sharded",
        lambda f: reshaped(f, SHARD, next(iter(tensors(f, SHARD)))),
        [SHARD, "has shape [32]; config.json says [64]"],
    ),
    "config.json: hidden_size edited": (
        "single",
        lambda f: edit_config(f, hidden_size=128),
        [hf_weights.SINGLE, "model.embed_tokens.weight has shape [384, 64]; config.json says [384, 128]"],
    ),
    "config.json: a layer added": (
        "single",
        lambda f: edit_config(f, num_hidden_layers=3),
        [hf_weights.SINGLE, "model.layers.2.input_layernorm.weight is missing"],
    ),
    "config.json: a layer removed": (
        "sharded",
        lambda f: edit_config(f, num_hidden_layers=1),
        ["model.layers.1.", "is not one of a 1-layer Llama's"],
    ),
    "config.json: the heads edited": (
        "single",
        lambda f: edit_config(f, num_attention_heads=8, num_key_value_heads=4),
        [hf_weights.SINGLE, "q_proj.weight has shape [64, 64]; config.json says [128, 64]"],
    ),
    "config.json: said tied when the weights are not": (
        "single",
        untied_edited_to_tied,
        [hf_weights.SINGLE, "lm_head.weight is not model.embed_tokens.weight", "tie_word_embeddings"],
    ),
    "config.json truncated": ("single", lambda f: halve(f / hf_config.CONFIG), [hf_config.CONFIG, "not valid JSON"]),
    "config.json of random bytes": (
        "single",
        lambda f: randomize(f / hf_config.CONFIG),
        [hf_config.CONFIG, "not valid JSON"],
    ),
    "tokenizer.json truncated": (
        "single",
        lambda f: halve(f / "tokenizer.json"),
        ["tokenizer.json", "not a tokenizer the tokenizers library reads"],
    ),
    "tokenizer.json deleted": ("sharded", lambda f: (f / "tokenizer.json").unlink(), ["tokenizer.json", "missing"]),
    "tokenizer_config.json of random bytes": (
        "single",
        lambda f: randomize(f / "tokenizer_config.json"),
        ["tokenizer_config.json", "not valid JSON"],
    ),
    "chat_template.jinja of random bytes": (
        "single",
        lambda f: (f / "chat_template.jinja").write_bytes(b"{{ \xff\xfe }}"),
        ["chat_template.jinja", "not UTF-8"],
    ),
    "chat_template.jinja not valid Jinja": (
        "single",
        lambda f: (f / "chat_template.jinja").write_text("{% for message in %}{{ message }}"),
        ["chat_template.jinja", "not valid Jinja"],
    ),
}


def damaged(folders: dict[str, Path], how: str, where: Path) -> tuple[Path, list[str]]:
    kind, damage, expected = DAMAGES[how]
    folder = copy_of(folders, kind, where)
    damage(folder)
    return folder, expected


@pytest.mark.parametrize("how", DAMAGES)
def test_meshstack_serve_refuses_a_damaged_folder_in_one_line_naming_the_file(
    folders: dict[str, Path], tmp_path: Path, how: str
) -> None:
    folder, expected = damaged(folders, how, tmp_path)
    line = refused_by_serve(folder)
    assert line.startswith(f"meshstack: {folder}"), line
    assert all(part in line for part in expected), line


def run_module(
    command: tuple[str, ...], job_json: str, cwd: Path, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """A pod's process, as the cluster starts it: `python -m MODULE` with the job's config."""
    env = {**process_env(job_json, 1), "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(python_module(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("how", ["a shard truncated", "every tensor NaN-filled", "config.json: a layer added"])
def test_the_clusters_server_exits_at_its_start_up_without_serving(
    folders: dict[str, Path], tmp_path: Path, how: str
) -> None:
    """Even told to wait for its checkpoint: a folder that is there and damaged does not heal by waiting."""
    folder, expected = damaged(folders, how, tmp_path)
    job = ServeJobConfig(
        name="m", checkpoint_uri=folder.as_uri(), wait_for_checkpoint=True, serve={"port": free_port()}
    )
    done = run_module(SERVER_COMMAND, job.model_dump_json(), tmp_path)
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(f"serve: {folder}") and all(part in line for part in expected), done.stderr
    assert '"serving"' not in done.stdout


@pytest.mark.parametrize(
    "how", ["a shard deleted", "a tensor of the wrong shape in a shard", "tokenizer.json truncated"]
)
def test_the_trainer_refuses_a_damaged_init_from_folder(folders: dict[str, Path], tmp_path: Path, how: str) -> None:
    folder, expected = damaged(folders, how, tmp_path)
    model, _ = hf_config.read_config(folders["single"])
    job = JobConfig(
        name="ft",
        model=model,
        data_uri=(tmp_path / "data").as_uri(),
        checkpoint_uri=(tmp_path / "ckpt").as_uri(),
        init_from_uri=folder.as_uri(),
        train={"steps": 2, "global_batch": 2, "seq_len": 16, "checkpoint_every": 2},
    )
    done = run_module(TRAINER_COMMAND, job.model_dump_json(), tmp_path)
    assert done.returncode == 2, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    errors = [e["message"] for e in events if e["event"] == "error"]
    assert len(errors) == 1 and "\n" not in errors[0], events
    assert errors[0].startswith(str(folder)) and all(part in errors[0] for part in expected), errors
    assert not any(e["event"] in ("init_from", "start", "step") for e in events), "nothing trained on it"
    assert not (tmp_path / "ckpt" / "2").exists()


@pytest.fixture(scope="module")
def pristine(folders: dict[str, Path]) -> dict[str, Any]:
    return model_store.load_hf_folder(str(folders["single"])).params


def scalars_changed(a: dict[str, Any], b: dict[str, Any]) -> int:
    flat = {**{k: v for k, v in a.items() if k != "layers"}, **{f"layers.{k}": v for k, v in a["layers"].items()}}
    other = {**{k: v for k, v in b.items() if k != "layers"}, **{f"layers.{k}": v for k, v in b["layers"].items()}}
    assert flat.keys() == other.keys()
    return sum(int(np.sum(flat[k] != other[k])) for k in flat)


FLIPS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FLIPS
@given(data=st.data(), kind=st.sampled_from(["single", "sharded"]))
def test_a_bit_flipped_anywhere_is_refused_naming_a_file_or_loads_only_that_change(
    folders: dict[str, Path], pristine: dict[str, Any], data: st.DataObject, kind: str
) -> None:
    """One bit flipped at a random offset of a random file of the folder (config, index, shards,
    tokenizer files): refused with one line that names a file of the folder, or loaded with every
    weight finite, of its shape, and at most the one scalar the flip landed in changed."""
    with tempfile.TemporaryDirectory() as where:
        folder = copy_of(folders, kind, Path(where))
        flip_drawn(data, sorted(p for p in folder.iterdir() if p.is_file()))
        try:
            loaded = model_store.load_hf_folder(str(folder))
        except BAD_INPUT as exc:
            message = str(exc)
            assert "\n" not in message and message.startswith(str(folder)), message
            return
        assert hf_weights.finite_everywhere(loaded.params) is None
        assert scalars_changed(loaded.params, pristine) <= 1


def test_the_damage_tests_start_from_a_folder_that_loads(folders: dict[str, Path], pristine: dict[str, Any]) -> None:
    """Every refusal above is the damage's: the same folders, undamaged, load, the shards as the one file."""
    sharded = model_store.load_hf_folder(str(folders["sharded"])).params
    assert scalars_changed(sharded, pristine) == 0
