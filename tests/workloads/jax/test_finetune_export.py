"""Fine-tuning a Hugging Face checkpoint with meshstack's trainer, and the way back out: the job starts
from the folder's weights (its first loss is transformers' loss on the same batch), trains them all,
and `meshstack export` writes a folder transformers loads with the same logits as meshstack's; the
export of the byte-level demo model carries a tokenizer.json that encodes as the byte tokenizer does;
`meshstack serve` on the fine-tuned checkpoint answers as transformers does on the export."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest

from meshstack.core.contract import JobConfig
from meshstack.workloads.jax import hf_config, hf_weights, model_store
from meshstack.workloads.jax.commands import data_prepare
from meshstack.workloads.jax.data import TokenReader, ensure_corpus, training_text
from meshstack.workloads.jax.model import forward
from meshstack.workloads.jax.tokenization import ByteTokenizer
from meshstack.workloads.jax.train import run
from tests.support.hf_models import Served, hf_greedy, hf_logits, meshstack

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow
TOLERANCE = 1e-4


def ours(loaded: model_store.LoadedModel, ids: np.ndarray) -> np.ndarray:
    positions = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
    return np.asarray(forward(loaded.params, ids, positions, loaded.cfg))


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory: pytest.TempPathFactory, hf_model: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("finetune")
    text = root / "corpus.txt"
    text.write_text(training_text()[:40000])
    data = (root / "data").as_uri()
    data_prepare([text], data, str(hf_model), "text", 1 << 20, quiet=True)
    cfg, _ = hf_config.read_config(hf_model)
    job = JobConfig(
        name="ft",
        model=cfg,
        data_uri=data,
        checkpoint_uri=(root / "ckpt").as_uri(),
        init_from_uri=str(hf_model),
        train={
            "steps": 4,
            "global_batch": 4,
            "seq_len": 32,
            "checkpoint_every": 4,
            "warmup_steps": 1,
            "learning_rate": 1e-3,
        },
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert run(job) == 0
    seen = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    return {"root": root, "job": job, "events": seen}


def test_fine_tuning_starts_from_the_pretrained_weights(finetuned: dict[str, Any], hf_model: Path) -> None:
    import torch

    job: JobConfig = finetuned["job"]
    seen = finetuned["events"]
    assert any(e["event"] == "init_from" for e in seen)
    first = next(e for e in seen if e["event"] == "step")
    batch = TokenReader(job.data_uri, job.train.seq_len, job.train.seed, job.model).batch(0, 4, 1, 0, 1)[0]
    logits = torch.tensor(hf_logits(hf_model, batch[:, :-1]))
    reference = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), torch.tensor(batch[:, 1:]).long().reshape(-1)
    )
    assert first["loss"] == pytest.approx(float(reference), abs=2e-4), "step 1's loss is the pretrained model's"
    assert [e["step"] for e in seen if e["event"] == "checkpoint"] == [4]


def test_export_loads_back_into_transformers_with_the_same_logits(
    finetuned: dict[str, Any], hf_model: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    ckpt = finetuned["root"] / "ckpt"
    out = tmp_path / "exported"
    done = meshstack("export", str(ckpt), str(out))
    assert done.returncode == 0, done.stderr
    trained, _ = model_store.load_checkpoint(ckpt.as_uri(), finetuned["job"].model)
    ids = np.random.default_rng(1).integers(0, 384, (2, 64))
    theirs = hf_logits(out, ids)
    assert np.abs(ours(trained, ids) - theirs).max() <= TOLERANCE
    assert np.abs(theirs - hf_logits(hf_model, ids)).max() > 1e-3, "the export holds the fine-tuned weights"
    text = "def read_config(path):\n    return path"
    assert (
        AutoTokenizer.from_pretrained(out)(text)["input_ids"]
        == AutoTokenizer.from_pretrained(hf_model)(text)["input_ids"]
    )
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == 1


def test_serving_the_fine_tuned_checkpoint_answers_as_transformers_on_its_export(
    finetuned: dict[str, Any], tmp_path: Path
) -> None:
    import openai
    from transformers import AutoTokenizer

    ckpt = finetuned["root"] / "ckpt"
    out = tmp_path / "exported"
    assert meshstack("export", str(ckpt), str(out)).returncode == 0
    tok = AutoTokenizer.from_pretrained(out)
    prompt = "Return the"
    reference = hf_greedy(out, tok(prompt)["input_ids"], 16)
    server = Served(ckpt, "--max-new-tokens", "16")
    try:
        api = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0)
        answer = api.completions.create(model="ckpt", prompt=prompt, max_tokens=16, temperature=0)
    finally:
        server.stop()
    assert answer.choices[0].text == tok.decode(reference, skip_special_tokens=True)


def test_a_sharded_export_is_read_back_whole(finetuned: dict[str, Any], tmp_path: Path) -> None:
    ckpt = finetuned["root"] / "ckpt"
    out = tmp_path / "sharded"
    assert meshstack("export", str(ckpt), str(out), "--max-shard-gib", "0.0001").returncode == 0
    index = json.loads((out / hf_weights.INDEX).read_text())
    assert len(set(index["weight_map"].values())) > 2
    back = model_store.load_hf_folder(str(out))
    trained, _ = model_store.load_checkpoint(ckpt.as_uri(), finetuned["job"].model)
    same = jax.tree.map(lambda a, b: bool(np.array_equal(np.asarray(a), np.asarray(b))), back.params, trained.params)
    assert all(jax.tree.leaves(same))
    ids = np.arange(40)[None] % 384
    assert np.abs(hf_logits(out, ids) - ours(trained, ids)).max() <= TOLERANCE


def test_the_byte_model_exports_with_a_tokenizer_transformers_reads(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    data = (tmp_path / "data").as_uri()
    ensure_corpus(data)
    job = JobConfig(
        name="b",
        data_uri=data,
        checkpoint_uri=(tmp_path / "ckpt").as_uri(),
        train={"steps": 2, "global_batch": 4, "checkpoint_every": 2},
    )
    with contextlib.redirect_stdout(io.StringIO()):
        assert run(job) == 0
    out = tmp_path / "exported"
    done = meshstack("export", str(tmp_path / "ckpt"), str(out))
    assert done.returncode == 0, done.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["tie_word_embeddings"] is True
    trained, _ = model_store.load_checkpoint((tmp_path / "ckpt").as_uri(), job.model)
    text = "héllo, wörld\n"
    ids = np.array([ByteTokenizer().encode(text)])
    assert AutoTokenizer.from_pretrained(out)(text)["input_ids"] == ids[0].tolist()
    assert np.abs(hf_logits(out, ids) - ours(trained, ids)).max() <= TOLERANCE
