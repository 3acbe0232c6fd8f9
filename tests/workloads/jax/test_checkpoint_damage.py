"""Checkpoints damaged in every way a disk, a network copy, a person or a diverged run damages them:
truncated, files deleted, random bytes, NaN or inf arrays under a valid manifest (the optimizer
state's included), an edited manifest, and a bit flipped at any offset of any file (a property test).
Each is refused with its reason and the previous good step is restored; with none good, the trainer
refuses to start and the server to load."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshstack.core.contract import JobConfig, ServeJobConfig
from meshstack.workloads.jax import checkpoint, distributed
from meshstack.workloads.jax.engine.loading import load_params
from meshstack.workloads.jax.train import Trainer, run
from tests.support.checkpoints import job
from tests.support.damage import flip_drawn, halve, randomize, truncate

pytestmark = pytest.mark.slow

LATEST, PREVIOUS = 4, 2


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, JobConfig]:
    """A run that checkpointed steps 2 and 4: each test damages a copy of it."""
    root = tmp_path_factory.mktemp("damage")
    cfg = job(root, LATEST)
    run(cfg)
    return root / "ckpt", cfg


@pytest.fixture(scope="module")
def trainer(trained: tuple[Path, JobConfig]) -> Trainer:
    return Trainer(trained[1], distributed.initialize())


@pytest.fixture(scope="module")
def pristine(trained: tuple[Path, JobConfig], trainer: Trainer) -> dict[int, Any]:
    mngr = checkpoint.manager(trained[1].checkpoint_uri, keep=5)
    try:
        return {step: checkpoint.restore(mngr, step, *trainer.abstract) for step in (PREVIOUS, LATEST)}
    finally:
        mngr.close()


def copy_of(trained: tuple[Path, JobConfig], where: Path) -> Path:
    folder = where / "ckpt"
    shutil.copytree(trained[0], folder)
    return folder


def restore_from(folder: Path, trainer: Trainer) -> tuple[int | None, list[tuple[int, str]], Any]:
    """(the step restored, the steps skipped with why, what was restored)."""
    skipped: list[tuple[int, str]] = []
    mngr = checkpoint.manager(folder.as_uri(), keep=5)
    try:
        found = checkpoint.restore_latest_good(
            mngr, folder.as_uri(), *trainer.abstract, lambda step, why: skipped.append((step, why))
        )
    finally:
        mngr.close()
    return (None, skipped, None) if found is None else (found[0], skipped, found[1])


def same(a: Any, b: Any) -> bool:
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in pairs)


def files_of(folder: Path, step: int) -> list[Path]:
    return sorted(p for p in (folder / str(step)).rglob("*") if p.is_file())


def largest(folder: Path, step: int, tree: str) -> Path:
    return max((p for p in files_of(folder, step) if tree in p.parts), key=lambda p: p.stat().st_size)


def manifest(folder: Path, step: int = LATEST) -> Path:
    return folder / checkpoint.MANIFESTS / f"{step}.json"


def edit_manifest(folder: Path, change: Callable[[dict[str, str]], None]) -> None:
    data = json.loads(manifest(folder).read_text())
    change(data)
    manifest(folder).write_text(json.dumps(data))


def poisoned(folder: Path, trainer: Trainer, tree: str, value: float) -> None:
    """Write step LATEST again with `tree`'s float arrays set to `value`, under a valid manifest: what a
    diverged run saves, and no checksum can see."""
    uri = folder.as_uri()
    mngr = checkpoint.manager(uri, keep=5)
    restored = checkpoint.restore(mngr, LATEST, *trainer.abstract)
    mngr.close()
    shutil.rmtree(folder / str(LATEST))
    manifest(folder).unlink()
    trees = {k: restored[k] for k in ("params", "opt_state")}
    trees[tree] = jax.tree.map(
        lambda a: jnp.full_like(a, value) if jnp.issubdtype(a.dtype, jnp.floating) else a, trees[tree]
    )
    mngr = checkpoint.manager(uri, keep=5)
    checkpoint.save(mngr, LATEST, trees["params"], trees["opt_state"], {"step": LATEST})
    mngr.wait_until_finished()
    mngr.close()
    checkpoint.record(uri, LATEST)


DAMAGES: dict[str, tuple[Callable[[Path, Trainer], None], str]] = {
    "truncated to half": (
        lambda f, t: halve(largest(f, LATEST, "params")),
        "does not match its checksum",
    ),
    "truncated to nothing": (lambda f, t: truncate(f / str(LATEST) / "opt_state" / "manifest.ocdbt", 0), "checksum"),
    "a file deleted": (lambda f, t: (f / str(LATEST) / "params" / "_METADATA").unlink(), "is missing"),
    "a tree deleted": (lambda f, t: shutil.rmtree(f / str(LATEST) / "opt_state"), "is missing"),
    "random bytes": (
        lambda f, t: randomize(largest(f, LATEST, "opt_state")),
        "does not match its checksum",
    ),
    "a file added": (
        lambda f, t: (f / str(LATEST) / "params" / "extra").write_bytes(b"x"),
        "was not written by the save",
    ),
    "NaN parameters": (lambda f, t: poisoned(f, t, "params", float("nan")), "its parameters are not all finite"),
    "NaN optimizer state": (
        lambda f, t: poisoned(f, t, "opt_state", float("nan")),
        "its optimizer state is not all finite",
    ),
    "inf optimizer state": (
        lambda f, t: poisoned(f, t, "opt_state", float("inf")),
        "its optimizer state is not all finite",
    ),
    "manifest: a checksum edited": (
        lambda f, t: edit_manifest(f, lambda m: m.update({next(iter(m)): "0" * 64})),
        "does not match its checksum",
    ),
    "manifest: an entry removed": (
        lambda f, t: edit_manifest(f, lambda m: m.pop(next(iter(m)))),
        "was not written by the save",
    ),
    "manifest: emptied": (lambda f, t: edit_manifest(f, lambda m: m.clear()), "was not written by the save"),
    "manifest: not JSON": (lambda f, t: manifest(f).write_text("{"), "its checksum manifest is not valid"),
    "manifest: not UTF-8": (lambda f, t: manifest(f).write_bytes(b'{"\xff": 1}'), "is not UTF-8 text"),
    "manifest: a list": (lambda f, t: manifest(f).write_text("[]"), "not a mapping of files to checksums"),
    "manifest: deleted": (lambda f, t: manifest(f).unlink(), "it has no checksum manifest"),
}


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_latest_checkpoint_is_refused_and_the_previous_restored(
    trained: tuple[Path, JobConfig], trainer: Trainer, pristine: dict[int, Any], tmp_path: Path, how: str
) -> None:
    damage, reason = DAMAGES[how]
    folder = copy_of(trained, tmp_path)
    damage(folder, trainer)
    step, skipped, restored = restore_from(folder, trainer)
    assert step == PREVIOUS and [s for s, _ in skipped] == [LATEST], (step, skipped)
    assert reason in skipped[0][1], skipped
    assert same(restored, pristine[PREVIOUS])


def test_the_trainer_falls_back_past_a_nan_optimizer_state_and_finishes(
    trained: tuple[Path, JobConfig], trainer: Trainer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the issue saw: the NaN moments were restored as good, the next step's loss was NaN and the
    job stopped (exit 3) without ever trying the step before."""
    folder = copy_of(trained, tmp_path)
    poisoned(folder, trainer, "opt_state", float("nan"))
    capsys.readouterr()
    run(trained[1].model_copy(update={"checkpoint_uri": folder.as_uri(), "train": job(tmp_path, 6).train}))
    seen = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert {"event": "checkpoint_damaged", "step": LATEST, "reason": "its optimizer state is not all finite"} in seen
    assert [e["step"] for e in seen if e["event"] == "restored"] == [PREVIOUS]
    assert seen[-1]["event"] == "done" and np.isfinite(seen[-1]["loss"])


@pytest.mark.parametrize("how", ["truncated to half", "random bytes", "NaN parameters", "manifest: not UTF-8"])
def test_the_server_never_loads_a_damaged_checkpoint(
    trained: tuple[Path, JobConfig], trainer: Trainer, pristine: dict[int, Any], tmp_path: Path, how: str
) -> None:
    folder = copy_of(trained, tmp_path)
    DAMAGES[how][0](folder, trainer)
    serve = ServeJobConfig(name="s", model=trained[1].model, checkpoint_uri=folder.as_uri())
    assert same(load_params(serve), pristine[PREVIOUS]["params"])
    zeroed = largest(folder, PREVIOUS, "params")  # and now the previous step too
    zeroed.write_bytes(b"\0" * zeroed.stat().st_size)
    with pytest.raises(checkpoint.CheckpointError, match=r"no checkpoint under .* can be trusted"):
        load_params(serve)


FLIPS = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FLIPS
@given(data=st.data(), both=st.booleans())
def test_a_bit_flipped_anywhere_is_refused_or_harmless(
    trained: tuple[Path, JobConfig], trainer: Trainer, pristine: dict[int, Any], data: st.DataObject, both: bool
) -> None:
    """One bit flipped at a random offset of a random file of the latest step (its manifest included),
    and of the previous step too when `both`: the latest is restored only if the flip changed nothing
    it holds, else the previous; with both damaged, nothing is restored and the trainer refuses."""
    with tempfile.TemporaryDirectory() as where:
        folder = copy_of(trained, Path(where))
        for step in (LATEST, PREVIOUS) if both else (LATEST,):
            flip_drawn(data, [*files_of(folder, step), manifest(folder, step)], label=f"file {step}")
        try:
            step, skipped, restored = restore_from(folder, trainer)
        except checkpoint.CheckpointError as exc:
            assert both, f"only the latest was damaged, yet: {exc}"
            return
        assert step is not None
        assert same(restored, pristine[step]), "what was restored is what was saved"
        if step == PREVIOUS:
            assert [s for s, _ in skipped] == [LATEST]
