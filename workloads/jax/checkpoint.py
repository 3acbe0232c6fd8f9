"""Checkpoints with orbax: saved every N steps, kept K deep, written atomically, restored on start.

Orbax writes each step into a temporary directory and renames it only once every
process has finished, so a job killed mid-save leaves the previous checkpoint as
the latest one; the leftover temporary directory is removed on the next start.
"""

from __future__ import annotations

from typing import Any

import orbax.checkpoint as ocp

from workloads.jax.storage import checkpoint_location


def manager(uri: str, keep: int = 3, read_only: bool = False) -> ocp.CheckpointManager:
    """The caller decides when to save (every N steps and at the end); the manager keeps the last `keep`."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        create=not read_only,
        read_only=read_only,
        cleanup_tmp_directories=not read_only,
        enable_async_checkpointing=False,
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


def restore(mngr: ocp.CheckpointManager, step: int, params: Any, opt_state: Any | None = None) -> dict[str, Any]:
    """Restore onto the abstract arrays given (shapes, dtypes and shardings); opt_state=None skips it."""
    items: dict[str, Any] = {"params": ocp.args.StandardRestore(params), "meta": ocp.args.JsonRestore()}
    if opt_state is not None:
        items["opt_state"] = ocp.args.StandardRestore(opt_state)
    return dict(mngr.restore(step, args=ocp.args.Composite(**items)))
