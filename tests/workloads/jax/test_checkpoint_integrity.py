"""Checkpoints damaged after they were written are refused with a reason and the previous good one is
used; a diverging run stops before it saves; the server never serves non-finite weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import pytest

from meshstack.core.contract import JobConfig, ServeJobConfig
from meshstack.workloads.jax import checkpoint, distributed
from meshstack.workloads.jax.engine.loading import load_params
from meshstack.workloads.jax.train import DivergedError, Trainer, run
from tests.support.checkpoints import job

pytestmark = pytest.mark.slow


def events(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def flip_a_block(step_dir: Path) -> Path:
    target = max(
        (p for p in step_dir.rglob("*") if p.is_file() and "params" in p.parts), key=lambda p: p.stat().st_size
    )
    data = bytearray(target.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    target.write_bytes(bytes(data))
    return target


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(job(tmp_path, 4))
    capsys.readouterr()
    flip_a_block(tmp_path / "ckpt" / "4")
    run(job(tmp_path, 6))
    seen = events(capsys)
    damaged = [e for e in seen if e["event"] == "checkpoint_damaged"]
    assert [e["step"] for e in damaged] == [4] and "does not match its checksum" in damaged[0]["reason"]
    assert {"event": "restored", "step": 2} in [
        {k: e[k] for k in ("event", "step")} for e in seen if e["event"] == "restored"
    ]
    assert checkpoint.damage((tmp_path / "ckpt").as_uri(), 6) is None, "the new save has its manifest"


def test_a_checkpoint_without_its_manifest_is_not_trusted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(job(tmp_path, 4))
    (tmp_path / "ckpt" / checkpoint.MANIFESTS / "4.json").unlink()
    capsys.readouterr()
    run(job(tmp_path, 6))
    damaged = [e for e in events(capsys) if e["event"] == "checkpoint_damaged"]
    assert damaged == [
        {"event": "checkpoint_damaged", "step": 4, "reason": "it has no checksum manifest (its save did not finish)"}
    ] or (damaged[0]["reason"] == "it has no checksum manifest (its save did not finish)")


def test_when_no_checkpoint_can_be_trusted_the_job_refuses_to_start(tmp_path: Path) -> None:
    run(job(tmp_path, 4))
    for step in ("2", "4"):
        flip_a_block(tmp_path / "ckpt" / step)
    with pytest.raises(
        checkpoint.CheckpointError, match=r"no checkpoint under .* can be trusted: step 4: .*; step 2: "
    ):
        run(job(tmp_path, 6))


def test_a_diverging_run_stops_before_saving(tmp_path: Path) -> None:
    with pytest.raises(DivergedError, match=r"the loss is (nan|inf) at step (\d+) \(1 step\(s\) in a row") as info:
        run(job(tmp_path, 8, learning_rate=1e30, warmup_steps=0, checkpoint_every=1))
    bad = int(str(info.value).split(" at step ")[1].split()[0])
    saved = sorted(int(p.name) for p in (tmp_path / "ckpt").iterdir() if p.name.isdigit())
    assert saved and max(saved) < bad, "no checkpoint was written at or after the step whose loss was not finite"


def test_skipped_non_finite_steps_are_counted_before_stopping(tmp_path: Path) -> None:
    with pytest.raises(DivergedError, match=r"\(3 step\(s\) in a row; train.skip_nonfinite_steps allows 2\)"):
        run(job(tmp_path, 8, learning_rate=1e30, warmup_steps=0, skip_nonfinite_steps=2))


def _poison(tmp_path: Path, cfg: JobConfig, step: int) -> None:
    """Save a checkpoint whose parameters are NaN, with a valid manifest: damage no checksum can see."""
    trainer = Trainer(cfg, distributed.initialize())
    mngr = checkpoint.manager(cfg.checkpoint_uri, keep=5)
    restored = checkpoint.restore(mngr, 2, *trainer.abstract)
    nan = jax.tree.map(lambda a: jnp.full_like(a, jnp.nan), restored["params"])
    checkpoint.save(mngr, step, nan, restored["opt_state"], {"step": step})
    mngr.wait_until_finished()
    mngr.close()
    checkpoint.record(cfg.checkpoint_uri, step)


def test_the_server_skips_non_finite_weights_and_refuses_when_nothing_else_is_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = job(tmp_path, 2)
    run(cfg)
    _poison(tmp_path, cfg, 3)
    capsys.readouterr()
    serve = ServeJobConfig(name="s", model=cfg.model, checkpoint_uri=cfg.checkpoint_uri)
    load_params(serve)
    assert {"event": "checkpoint_damaged", "step": 3, "reason": "its parameters are not all finite"} in events(capsys)
    flip_a_block(tmp_path / "ckpt" / "2")
    with pytest.raises(checkpoint.CheckpointError, match="step 3: its parameters are not all finite; step 2: "):
        load_params(serve)


def test_a_tampered_manifest_is_a_damaged_checkpoint(tmp_path: Path) -> None:
    run(job(tmp_path, 2))
    manifest = tmp_path / "ckpt" / checkpoint.MANIFESTS / "2.json"
    manifest.write_text('{"a": "1", "a": "2"}')
    assert checkpoint.damage((tmp_path / "ckpt").as_uri(), 2) == (
        f"its checksum manifest is not valid: {manifest}: not valid JSON: duplicate key 'a'"
    )
