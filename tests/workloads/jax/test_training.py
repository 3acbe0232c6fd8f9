"""Real JAX on the CPU: multi-process training, restarts from checkpoints, the data reader."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from meshstack.core.contract import JobConfig
from meshstack.workloads.jax import tokenizer
from meshstack.workloads.jax.data import TokenReader, ensure_corpus
from meshstack.workloads.jax.train import run
from meshstack.workloads.local import ProcessGroup, TrainResult, progress, train
from tests.support.training_runs import EVERY, STEPS, job, losses, quiet


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TrainResult]:
    root = tmp_path_factory.mktemp("train")
    killed_at: list[int] = []
    final: list[int] = []

    def kill_once(event: dict[str, Any], group: ProcessGroup, attempt: int) -> None:
        # Saves run in the background: kill once step 8's is final, at a step before the next (16).
        if event.get("event") == "checkpoint":
            final.append(event["step"])
        if attempt == 0 and event.get("event") == "step" and EVERY in final and not killed_at:
            assert event["step"] < 2 * EVERY
            killed_at.append(event["step"])
            group.kill(1)

    one = train(job(root, "one"), processes=1, devices_per_process=2, log_dir=root / "logs", on_event=quiet)
    two = train(job(root, "two"), processes=2, devices_per_process=1, log_dir=root / "logs", on_event=quiet)
    killed = train(job(root, "killed"), processes=2, devices_per_process=1, log_dir=root / "logs", on_event=kill_once)
    return {"one": one, "two": two, "killed": killed, "root": root}  # type: ignore[dict-item]


@pytest.mark.slow
def test_loss_falls_on_the_shipped_corpus(runs: dict[str, TrainResult]) -> None:
    curve = losses(runs["two"])
    assert curve[1] > 5.0
    assert curve[STEPS] < curve[1] - 1.5


@pytest.mark.slow
def test_two_processes_match_one(runs: dict[str, TrainResult]) -> None:
    one, two = losses(runs["one"]), losses(runs["two"])
    assert sorted(one) == sorted(two) == list(range(1, STEPS + 1))
    for step in one:
        assert two[step] == pytest.approx(one[step], abs=2e-4), step
    start = next(e for e in runs["two"].events if e["event"] == "start")
    assert (start["processes"], start["devices"]) == (2, 2)


@pytest.mark.slow
def test_killed_process_restarts_the_job_from_its_last_checkpoint(runs: dict[str, TrainResult]) -> None:
    killed = runs["killed"]
    assert killed.restarts == 1
    restored = [e["step"] for e in killed.events if e.get("event") == "restored"]
    assert restored == [EVERY], "resumed from the last checkpoint before the kill"
    assert any(e.get("event") == "restarting" for e in killed.events)
    after = [
        e["step"]
        for e in killed.events[killed.events.index({"event": "restored", "step": EVERY}) :]
        if e.get("event") == "step"
    ]
    assert after == list(range(EVERY + 1, STEPS + 1)), "no step is lost or repeated past the checkpoint"
    assert killed.final_loss == pytest.approx(runs["two"].final_loss, abs=2e-4), "the restart changes nothing"
    root: Path = runs["root"]  # type: ignore[assignment]
    left = sorted(p.name for p in (root / "killed").iterdir())
    assert left == ["16", "24", "8", "meshstack-checksums", "meshstack-model.json"], (
        f"only whole checkpoints remain, the last three kept, beside the model's shape: {left}"
    )
    manifests = sorted(p.name for p in (root / "killed" / "meshstack-checksums").iterdir())
    assert manifests == ["16.json", "24.json", "8.json"], "one manifest per kept checkpoint, none for deleted ones"


@pytest.mark.slow
def test_progress_lines(runs: dict[str, TrainResult]) -> None:
    out = io.StringIO()
    show = progress(out, "tiny", STEPS)
    for event in runs["killed"].events:
        show(event, None, 0)  # type: ignore[arg-type]
    text = out.getvalue()
    assert f"tiny: step {STEPS}/{STEPS}  loss " in text
    assert "resumed from the checkpoint of step 8" in text and "restarting the group" in text


def test_each_process_reads_its_own_rows(tmp_path: Path) -> None:
    uri = (tmp_path / "data").as_uri()
    ensure_corpus(uri)
    reader = TokenReader(uri, seq_len=32, seed=7)
    whole = reader.batch(step=3, global_batch=8, micro_batches=2, process=0, processes=1)
    halves = [reader.batch(step=3, global_batch=8, micro_batches=2, process=p, processes=2) for p in (0, 1)]
    assert whole.shape == (2, 4, 33) and halves[0].shape == (2, 2, 33)
    np.testing.assert_array_equal(np.concatenate(halves, axis=1), whole)
    assert not np.array_equal(whole, reader.batch(step=4, global_batch=8, micro_batches=2, process=0, processes=1))
    assert whole.max() < tokenizer.VOCAB_SIZE


def test_mfu_is_reported_against_the_peak(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = (tmp_path / "data").as_uri()
    ensure_corpus(data)
    config = JobConfig(
        name="mfu",
        data_uri=data,
        checkpoint_uri=(tmp_path / "ckpt").as_uri(),
        train={"steps": 2, "global_batch": 4, "checkpoint_every": 2},
        peak_tflops_per_device=0.5,
    )
    run(config)
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    last = [e for e in events if e["event"] == "step"][-1]
    assert last["mfu"] == pytest.approx(last["tflops_per_device"] / 0.5, rel=1e-2)
    assert [e["step"] for e in events if e["event"] == "checkpoint"] == [2]
