"""Checkpoints with orbax: saved every N steps, kept K deep, written atomically and in the background,
checked on restore.

Orbax writes each step into a temporary directory and renames it only once every
process has finished, so a job killed mid-save leaves the previous checkpoint as
the latest one; the leftover temporary directory is removed on the next start.
Saves are asynchronous: orbax copies the arrays to host memory and returns, and
its own thread writes them while the next steps run.

What orbax does not catch is a checkpoint damaged after it was written (a
partial copy, a flipped block): it restores whatever bytes it finds. So each save
also records the SHA-256 of every file it wrote, in a manifest beside the steps
(`meshstack-checksums/<step>.json`, written last and atomically), and a restore
takes the newest step whose files still match their manifest and whose
parameters are all finite, saying which it skipped and why.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from meshstack.core.input_files import InputFileError, parse_json
from meshstack.workloads.jax.storage import checkpoint_location, filesystem

MANIFESTS = "meshstack-checksums"


class CheckpointError(RuntimeError):
    """No checkpoint that can be trusted, where some exist."""


def manager(uri: str, keep: int = 3, read_only: bool = False) -> ocp.CheckpointManager:
    """The caller decides when to save (every N steps and at the end); the manager keeps the last `keep`."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        create=not read_only,
        read_only=read_only,
        cleanup_tmp_directories=not read_only,
        enable_async_checkpointing=not read_only,
    )
    return ocp.CheckpointManager(checkpoint_location(uri), options=options, item_names=("params", "opt_state", "meta"))


def save(mngr: ocp.CheckpointManager, step: int, params: Any, opt_state: Any, meta: dict[str, Any]) -> bool:
    return mngr.save(
        step,
        args=ocp.args.Composite(
            params=ocp.args.StandardSave(params),
            opt_state=ocp.args.StandardSave(opt_state),
            meta=ocp.args.JsonSave(meta),
        ),
        force=True,
    )


class AsyncCheckpointer:
    """Saves that overlap the next steps. A save is final once orbax's thread has renamed its
    directory; a thread of ours waits for that and only then has process 0 write the step's manifest
    (a step without one is never restored), whatever the training loop is doing by then: a loop
    stuck in a collective must not leave a final checkpoint unrecorded. `on_final(step, seconds)`
    hears how long the save took from start to final."""

    def __init__(
        self, mngr: ocp.CheckpointManager, uri: str, primary: bool, on_final: Callable[[int, float], None]
    ) -> None:
        self.mngr, self.uri, self.primary, self.on_final = mngr, uri, primary, on_final
        self._finalizer: threading.Thread | None = None

    def save(self, step: int, params: Any, opt_state: Any, meta: dict[str, Any]) -> float:
        """Start saving `step`; returns the seconds the training loop was held (the copy to host)."""
        self.finish()  # orbax runs one save at a time: the previous one becomes final first
        began = time.perf_counter()
        save(self.mngr, step, params, opt_state, meta)
        held = time.perf_counter() - began
        self._finalizer = threading.Thread(
            target=self._finalize, args=(step, began), name=f"meshstack-checkpoint-{step}", daemon=True
        )
        self._finalizer.start()
        return held

    def finish(self) -> None:
        """Wait until the save in flight is final and recorded (before a new save, on SIGTERM, at the end)."""
        if self._finalizer is not None:
            self._finalizer.join()
            self._finalizer = None

    def _finalize(self, step: int, began: float) -> None:
        self.mngr.wait_until_finished()
        if self.primary:
            record(self.uri, step)
        self.on_final(step, time.perf_counter() - began)


def restore(mngr: ocp.CheckpointManager, step: int, params: Any, opt_state: Any | None = None) -> dict[str, Any]:
    """Restore onto the abstract arrays given (shapes, dtypes and shardings); opt_state=None skips it."""
    items: dict[str, Any] = {"params": ocp.args.StandardRestore(params), "meta": ocp.args.JsonRestore()}
    if opt_state is not None:
        items["opt_state"] = ocp.args.StandardRestore(opt_state)
    return dict(mngr.restore(step, args=ocp.args.Composite(**items)))


def _digests(uri: str, step: int) -> dict[str, str]:
    fs, root = filesystem(uri)
    base = f"{root.rstrip('/')}/{step}"
    out = {}
    for path in sorted(fs.find(base)):
        digest = hashlib.sha256()
        with fs.open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        out[path[len(base) + 1 :]] = digest.hexdigest()
    return out


def record(uri: str, step: int) -> None:
    """Write the step's manifest (process 0, after the save is final); drop manifests of deleted steps."""
    fs, root = filesystem(uri)
    folder = f"{root.rstrip('/')}/{MANIFESTS}"
    fs.makedirs(folder, exist_ok=True)
    partial = f"{folder}/{step}.json.partial"
    with fs.open(partial, "w") as f:
        json.dump(_digests(uri, step), f, indent=1, sort_keys=True)
    fs.mv(partial, f"{folder}/{step}.json")
    for name in fs.ls(folder, detail=False):
        stem = name.rsplit("/", 1)[-1].split(".")[0]
        if stem.isdigit() and not fs.exists(f"{root.rstrip('/')}/{stem}"):
            fs.rm(name)


def damage(uri: str, step: int) -> str | None:
    """Why the step's files cannot be trusted, or None when they match their manifest."""
    fs, root = filesystem(uri)
    manifest = f"{root.rstrip('/')}/{MANIFESTS}/{step}.json"
    if not fs.exists(manifest):
        return "it has no checksum manifest (its save did not finish)"
    with fs.open(manifest, "rb") as f:
        raw = f.read()
    try:
        expected = parse_json(raw.decode("utf-8"), Path(manifest))
    except UnicodeDecodeError:
        return "its checksum manifest is not valid: it is not UTF-8 text"
    except InputFileError as exc:
        return f"its checksum manifest is not valid: {exc}"
    if not isinstance(expected, dict):
        return "its checksum manifest is not a mapping of files to checksums"
    found = _digests(uri, step)
    for name, digest in expected.items():
        if name not in found:
            return f"{name} is missing"
        if found[name] != digest:
            return f"{name} does not match its checksum"
    extra = sorted(set(found) - set(expected))
    return f"{extra[0]} was not written by the save" if extra else None


def quarantine(uri: str, step: int) -> None:
    """Move a damaged step aside (never deleted: someone may want to look at it) so a resumed run can
    save that step again."""
    fs, root = filesystem(uri)
    base = root.rstrip("/")
    n = 0
    while fs.exists(f"{base}/damaged-{step}-{n}"):
        n += 1
    fs.mv(f"{base}/{step}", f"{base}/damaged-{step}-{n}", recursive=True)
    manifest = f"{base}/{MANIFESTS}/{step}.json"
    if fs.exists(manifest):
        fs.mv(manifest, f"{base}/damaged-{step}-{n}.sha256.json")


# The restored trees that hold numbers, and what it means when one is not finite.
TREES = (("params", "its parameters are not all finite"), ("opt_state", "its optimizer state is not all finite"))


def finite(tree: Any) -> bool:
    return bool(jax.tree.reduce(lambda ok, leaf: ok & jnp.all(jnp.isfinite(leaf)), tree, jnp.bool_(True)))


def restore_latest_good(
    mngr: ocp.CheckpointManager,
    uri: str,
    params: Any,
    opt_state: Any | None,
    skipped: Callable[[int, str], None],
) -> tuple[int, dict[str, Any]] | None:
    """The newest step that matches its manifest and whose every restored tree is finite (the
    parameters, and the optimizer state where it is restored: a diverged run's NaN moments pass any
    checksum, and the step after resuming from them is NaN too), restored; None when there are no
    checkpoints; CheckpointError when there are some and none can be trusted."""
    steps = sorted(mngr.all_steps(), reverse=True)
    reasons = []
    for step in steps:
        try:
            problem = damage(uri, step)
        except OSError as exc:  # a file that vanished or cannot be opened while it was hashed
            problem = f"it cannot be read ({exc.strerror or type(exc).__name__})"
        restored: dict[str, Any] | None = None
        if problem is None:
            try:
                restored = restore(mngr, step, params, opt_state)
            except Exception as exc:  # orbax raises many kinds on unreadable data
                problem = f"it cannot be read ({type(exc).__name__})"
        if restored is not None:
            problem = next((why for name, why in TREES if name in restored and not finite(restored[name])), None)
        if problem is None and restored is not None:
            return step, restored
        reasons.append(f"step {step}: {problem}")
        skipped(step, str(problem))
    if steps:
        raise CheckpointError(f"no checkpoint under {uri} can be trusted: {'; '.join(reasons)}")
    return None
