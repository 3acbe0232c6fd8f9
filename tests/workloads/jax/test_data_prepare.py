"""`meshstack data prepare` tokenizes text and JSONL with the model's own tokenizer into the trainer's
shards: the ids are the tokenizer's own `encode` of each document and the model's EOS, uint16 while
the vocabulary fits and uint32 past 65,535, with a manifest of counts and a progress bar; the trainer
refuses shards whose width or vocabulary is not its model's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from meshstack.core.contract import JOB_CONFIG_ENV, JobConfig
from meshstack.workloads.jax import hf_config
from meshstack.workloads.jax.data import DataMismatchError, TokenReader, ensure_corpus, training_text
from tests.support.hf_models import meshstack

pytest.importorskip("tokenizers")
pytestmark = pytest.mark.slow


@pytest.fixture
def inputs(tmp_path: Path) -> list[Path]:
    text = training_text()
    first = tmp_path / "notes.txt"
    first.write_text(text[:3000])
    records = tmp_path / "records.jsonl"
    records.write_text(
        "\n".join(json.dumps({"text": text[i : i + 700], "id": i}) for i in range(5000, 12000, 700)) + "\n"
    )
    return [first, records]


def documents(inputs: list[Path]) -> list[str]:
    out = [inputs[0].read_text()]
    out += [json.loads(line)["text"] for line in inputs[1].read_text().splitlines()]
    return out


def shard_ids(out: Path) -> tuple[dict, np.ndarray]:  # type: ignore[type-arg]
    index = json.loads((out / "index.json").read_text())
    dtype = np.dtype("<u2" if index["dtype"] == "uint16" else "<u4")
    ids = np.concatenate([np.fromfile(out / s["name"], dtype) for s in index["shards"]])
    return index, ids


def expected_ids(model: Path, docs: list[str]) -> list[int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model / "tokenizer.json"))
    eos = json.loads((model / "config.json").read_text())["eos_token_id"]
    return [i for d in docs for i in [*tok.encode(d).ids, eos]]


def test_the_shards_hold_the_tokenizers_own_ids(hf_model: Path, inputs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "shards"
    done = meshstack(
        "data", "prepare", *map(str, inputs), "--tokenizer", str(hf_model), "--out", str(out), "--shard-tokens", "1000"
    )
    assert done.returncode == 0, done.stderr
    assert "tokenizing" in done.stderr and "100%" in done.stderr, "a progress bar"
    index, ids = shard_ids(out)
    docs = documents(inputs)
    assert ids.tolist() == expected_ids(hf_model, docs)
    assert index["dtype"] == "uint16" and index["vocab_size"] == 384
    assert index["documents"] == len(docs) and index["tokens"] == len(ids)
    assert len(index["shards"]) > 1 and sum(s["tokens"] for s in index["shards"]) == len(ids)
    assert [s["documents"] for s in index["sources"]] == [1, len(docs) - 1]
    assert index["tokenizer_fingerprint"].startswith("sha256:")


def test_a_vocabulary_past_65535_ids_is_stored_uint32(hf_model: Path, inputs: list[Path], tmp_path: Path) -> None:
    wide = tmp_path / "wide"
    shutil.copytree(hf_model, wide)
    config = json.loads((wide / hf_config.CONFIG).read_text())
    (wide / hf_config.CONFIG).write_text(json.dumps({**config, "vocab_size": 128256}))
    out = tmp_path / "shards"
    done = meshstack("data", "prepare", *map(str, inputs), "--tokenizer", str(wide), "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    index, ids = shard_ids(out)
    assert index["dtype"] == "uint32" and ids.dtype == np.dtype("<u4")
    assert ids.tolist() == expected_ids(hf_model, documents(inputs))
    wide_model, _ = hf_config.read_config(wide)
    assert TokenReader(out.as_uri(), 16, 0, wide_model).read(0, 0).tolist() == ids[:17].tolist()
    narrow, _ = hf_config.read_config(hf_model)
    with pytest.raises(DataMismatchError, match="the shards' vocabulary has 128256 ids; the model's vocab_size is 384"):
        TokenReader(out.as_uri(), 16, 0, narrow)


def test_the_trainer_refuses_shards_of_another_width_or_tokenizer(
    hf_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from meshstack.workloads.jax import train

    model, _ = hf_config.read_config(hf_model)
    byte_shards = (tmp_path / "bytes").as_uri()
    ensure_corpus(byte_shards)
    job = JobConfig(
        name="ft",
        model=model,
        data_uri=byte_shards,
        checkpoint_uri=(tmp_path / "ckpt").as_uri(),
        init_from_uri=hf_model.as_uri(),
        train={"steps": 1, "global_batch": 2, "seq_len": 16},
    )
    monkeypatch.setenv(JOB_CONFIG_ENV, job.model_dump_json())
    assert train.main() == 2
    error = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert error["event"] == "error"
    assert "index.json: the shards were made with another tokenizer than the model's" in error["message"]
    wide = model.model_copy(update={"vocab_size": 70000})
    with pytest.raises(DataMismatchError, match="the shards hold uint16 ids; a model of vocab_size 70000 reads uint32"):
        TokenReader(byte_shards, 16, 0, wide)


def test_a_bad_line_is_named(hf_model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"body": "no text"}\n')
    done = meshstack("data", "prepare", str(bad), "--tokenizer", str(hf_model), "--out", str(tmp_path / "o"), "--quiet")
    assert done.returncode == 2
    assert done.stderr.strip() == f"meshstack: {bad}:2: no string field 'text' (--field names it)"
