"""Training: a jit-compiled, mesh-sharded step with gradient accumulation, checkpoints and metrics.

Run as `python -m meshstack.workloads.jax.train` with the job in MESHSTACK_JOB_CONFIG (JSON)
and the multi-host environment contract set. Process 0 prints one JSON line per
event (restored, step metrics, checkpoint, preempted, done) to stdout; the local
target and the logs on Kubernetes read the same lines, and every process serves
the same figures as Prometheus metrics. Checkpoints are saved in the background;
SIGTERM on any process saves the step in progress on all of them and exits 143.
"""

from __future__ import annotations

from meshstack.workloads.jax import sigterm

if __name__ == "__main__":
    # First, before jax and the job are loaded (seconds on a busy node): a drain that comes now must
    # not kill the process outright (workloads/jax/sigterm.py).
    sigterm.hold()

import math
import os
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from pydantic import ValidationError

from meshstack.core.contract import (
    COORDINATOR,
    EXIT_CONTRACT,
    EXIT_PREEMPTED,
    EXIT_UNTRUSTED,
    GRACE_SECONDS_ENV,
    JOB_CONFIG_ENV,
    RESTART_ATTEMPT_ENV,
    JobConfig,
    TrainConfig,
)
from meshstack.workloads.jax import checkpoint, distributed, hf_config, model_store
from meshstack.workloads.jax.data import DataMismatchError, TokenReader
from meshstack.workloads.jax.events import write_event
from meshstack.workloads.jax.lifecycle import Preemption, Watchdog
from meshstack.workloads.jax.model import PARAM_SPECS, init_params, loss_fn, param_specs
from meshstack.workloads.jax.tokenization import TokenizerError
from meshstack.workloads.jax.train_metrics import TrainMetrics

BATCH_AXES = ("data", "fsdp")


def compute_dtype(setting: str, platform: str) -> jnp.dtype:
    if setting == "auto":
        return jnp.bfloat16 if platform in ("gpu", "tpu", "cuda", "rocm") else jnp.float32
    return jnp.dtype(setting)


def make_mesh(cfg: JobConfig) -> Mesh:
    devices = jax.devices()
    if len(devices) != cfg.mesh.size:
        raise distributed.ContractError(
            f"mesh data x fsdp x tensor = {cfg.mesh.size} but this job has {len(devices)} devices"
        )
    return Mesh(np.array(devices).reshape(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor), ("data", "fsdp", "tensor"))


class DivergedError(RuntimeError):
    """The loss stopped being a number."""


def optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    schedule = optax.warmup_cosine_decay_schedule(
        0.0,
        cfg.learning_rate,
        max(cfg.warmup_steps, 1),
        max(cfg.steps, cfg.warmup_steps + 1),
        end_value=cfg.learning_rate * 0.1,
    )
    tx = optax.chain(
        optax.clip_by_global_norm(1.0), optax.adamw(schedule, b1=0.9, b2=0.95, weight_decay=cfg.weight_decay)
    )
    if cfg.skip_nonfinite_steps:
        # A step whose gradients are not finite leaves the parameters as they were.
        tx = optax.apply_if_finite(tx, max_consecutive_errors=cfg.skip_nonfinite_steps)
    return tx


def state_specs(tree: Any) -> Any:
    """Optimizer moments follow their parameter's spec; counters are replicated."""

    def spec(path: tuple[Any, ...], leaf: Any) -> P:
        for entry in reversed(path):
            name = getattr(entry, "key", None)
            if name in PARAM_SPECS and getattr(leaf, "ndim", 0) == len(PARAM_SPECS[name]):
                return PARAM_SPECS[name]
        return P()

    return jax.tree_util.tree_map_with_path(spec, tree)


class Trainer:
    def __init__(self, cfg: JobConfig, topology: distributed.Topology) -> None:
        self.cfg, self.topology = cfg, topology
        self.mesh = make_mesh(cfg)
        self.dtype = compute_dtype(cfg.train.compute_dtype, topology.platform)
        self.tx = optimizer(cfg.train)
        key = jax.random.key(cfg.train.seed)
        abstract_params = jax.eval_shape(lambda: init_params(cfg.model, key))
        self.param_sharding = self._shard(param_specs(abstract_params))
        abstract_opt = jax.eval_shape(self.tx.init, abstract_params)
        self.opt_sharding = self._shard(state_specs(abstract_opt))
        self.batch_sharding = NamedSharding(self.mesh, P(None, BATCH_AXES))
        self.init = jax.jit(
            lambda: (p := init_params(cfg.model, key), self.tx.init(p)),
            out_shardings=(self.param_sharding, self.opt_sharding),
        )
        self.step_fn = jax.jit(
            self._step,
            in_shardings=(self.param_sharding, self.opt_sharding, self.batch_sharding),
            out_shardings=(self.param_sharding, self.opt_sharding, NamedSharding(self.mesh, P())),
            donate_argnums=(0, 1),
        )
        self.abstract = (
            jax.tree.map(
                lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_params, self.param_sharding
            ),
            jax.tree.map(
                lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_opt, self.opt_sharding
            ),
        )

    def pretrained(self, host: Any) -> tuple[Any, Any]:
        """Weights read from a Hugging Face folder (on every process), laid over the mesh as the trainer's
        own are, and a fresh optimizer state for them: full fine-tuning starts here."""

        def place(a: np.ndarray, sharding: NamedSharding) -> jax.Array:
            return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])

        params = jax.tree.map(place, host, self.param_sharding)
        opt_state = jax.jit(self.tx.init, out_shardings=self.opt_sharding)(params)
        return params, opt_state

    def _shard(self, specs: Any) -> Any:
        return jax.tree.map(lambda s: NamedSharding(self.mesh, s), specs, is_leaf=lambda x: isinstance(x, P))

    def _step(self, params: Any, opt_state: Any, batch: jax.Array) -> tuple[Any, Any, jax.Array]:
        grad_fn = jax.value_and_grad(loss_fn)

        def accumulate(carry: tuple[jax.Array, Any], micro: jax.Array) -> tuple[tuple[jax.Array, Any], None]:
            loss, grads = grad_fn(params, micro, self.cfg.model, self.dtype)
            return (carry[0] + loss, jax.tree.map(jnp.add, carry[1], grads)), None

        zeros = jax.tree.map(jnp.zeros_like, params)
        (loss, grads), _ = jax.lax.scan(accumulate, (jnp.zeros((), jnp.float32), zeros), batch)
        n = batch.shape[0]
        grads = jax.tree.map(lambda g: g / n, grads)
        updates, opt_state = self.tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss / n

    def global_batch(self, local: np.ndarray) -> jax.Array:
        shape = (local.shape[0], local.shape[1] * self.topology.process_count, local.shape[2])
        return jax.make_array_from_process_local_data(self.batch_sharding, local, shape)


def emit(topology: distributed.Topology, **event: Any) -> None:
    if topology.process_id == 0:
        write_event(event)


def run(cfg: JobConfig) -> int:
    """Train to cfg.train.steps, resuming from the latest checkpoint. Returns the exit code: 0 when
    done, EXIT_PREEMPTED after saving on SIGTERM."""
    preemption = Preemption()
    watchdog = Watchdog(cfg.train.stall_timeout_s)
    try:
        return _run(cfg, preemption, watchdog)
    finally:
        watchdog.stop()
        preemption.close()


def _run(cfg: JobConfig, preemption: Preemption, watchdog: Watchdog) -> int:
    topology = distributed.initialize()
    preemption.joined()
    trainer = Trainer(cfg, topology)
    train = cfg.train
    metrics = TrainMetrics(
        topology.process_id,
        None if cfg.metrics_port is None else cfg.metrics_port + _port_offset(topology),
        cfg.name,
        int(os.environ.get(RESTART_ATTEMPT_ENV, "0") or 0),
    )
    mngr = checkpoint.manager(cfg.checkpoint_uri, keep=train.keep_checkpoints)
    damaged: list[int] = []

    def skipped(step: int, why: str) -> None:
        damaged.append(step)
        emit(topology, event="checkpoint_damaged", step=step, reason=why)

    init_from = _init_from(cfg)
    if topology.process_id == 0:
        model_store.write_model_file(
            cfg.checkpoint_uri, cfg.model, model_store.local_folder(cfg.init_from_uri) if cfg.init_from_uri else None
        )
    found = checkpoint.restore_latest_good(mngr, cfg.checkpoint_uri, *trainer.abstract, skipped)
    if damaged:
        # The run will save those steps again: move the damaged ones aside first, on one process.
        if topology.process_id == 0:
            for step in damaged:
                checkpoint.quarantine(cfg.checkpoint_uri, step)
        distributed.barrier("meshstack-quarantine")
        mngr.reload()
    if found is None and init_from is not None:
        params, opt_state = trainer.pretrained(init_from.params)
        start = 0
        emit(topology, event="init_from", uri=cfg.init_from_uri, params=cfg.model.param_count())
    elif found is None:
        params, opt_state = trainer.init()
        start = 0
    else:
        start, restored = found
        params, opt_state = restored["params"], restored["opt_state"]
        emit(topology, event="restored", step=start)
    grace = float(os.environ.get(GRACE_SECONDS_ENV, "0") or 0)

    def final(step: int, seconds: float) -> None:
        metrics.checkpointed(seconds)
        emit(topology, event="checkpoint", step=step, save_s=round(seconds, 3))
        if grace and seconds > grace / 2:
            emit(topology, event="warning", message=f"a save took {seconds:.0f} s: over half the {grace:.0f} s grace")

    saver = checkpoint.AsyncCheckpointer(mngr, cfg.checkpoint_uri, topology.process_id == 0, final)
    fingerprint = init_from.tokenizer.fingerprint if init_from is not None else None
    reader = TokenReader(cfg.data_uri, train.seq_len, train.seed, cfg.model, fingerprint)
    tokens_per_step = train.global_batch * train.seq_len
    flops_per_step = cfg.model.train_flops_per_token(train.seq_len) * tokens_per_step
    emit(
        topology,
        event="start",
        step=start,
        processes=topology.process_count,
        devices=topology.global_devices,
        platform=topology.platform,
        dtype=str(jnp.dtype(trainer.dtype)),
        params=cfg.model.param_count(),
        metrics_port=metrics.port,
    )
    loss_value = float("nan")
    nonfinite = 0
    for step in range(start, train.steps):
        local = reader.batch(step, train.global_batch, train.micro_batches, topology.process_id, topology.process_count)
        began = time.perf_counter()
        params, opt_state, loss = trainer.step_fn(params, opt_state, trainer.global_batch(local))
        loss_value = float(loss)
        elapsed = time.perf_counter() - began
        watchdog.beat()
        done = step + 1
        nonfinite = nonfinite + 1 if not math.isfinite(loss_value) else 0
        if nonfinite > train.skip_nonfinite_steps:
            # Stop before a checkpoint can carry the damage: the last good one stays the latest.
            metrics.stepped(done, loss_value, elapsed, tokens_per_step / elapsed, None, train.checkpoint_every)
            raise DivergedError(
                f"the loss is {loss_value} at step {done} ({nonfinite} step(s) in a row; "
                f"train.skip_nonfinite_steps allows {train.skip_nonfinite_steps}): nothing was saved"
            )
        achieved = flops_per_step / elapsed / topology.global_devices / 1e12
        mfu = achieved / cfg.peak_tflops_per_device if cfg.peak_tflops_per_device else None
        metrics.stepped(done, loss_value, elapsed, tokens_per_step / elapsed, mfu, train.checkpoint_every)
        if done % train.log_every == 0 or done == train.steps:
            emit(
                topology,
                event="step",
                step=done,
                loss=round(loss_value, 5),
                tokens_per_s=round(tokens_per_step / elapsed, 1),
                step_time_s=round(elapsed, 5),
                tflops_per_device=round(achieved, 6),
                mfu=None if mfu is None else round(mfu, 6),
                checkpoint_age_s=round(metrics.checkpoint_age(), 3),
            )
        if preemption.agreed(done):
            return _save_and_stop(saver, watchdog, metrics, topology, done, params, opt_state, loss_value)
        if done % train.checkpoint_every == 0 or done == train.steps:
            # The watchdog keeps watching: starting a save waits for the previous one to become
            # final, which needs every host, so a host lost now would otherwise hang this one here.
            held = saver.save(done, params, opt_state, {"step": done, "loss": loss_value})
            watchdog.beat()
            emit(topology, event="checkpoint_started", step=done, blocking_s=round(held, 4))
    watchdog.pause()
    saver.finish()
    mngr.close()
    emit(topology, event="done", step=train.steps, loss=loss_value)
    return 0


def _save_and_stop(
    saver: checkpoint.AsyncCheckpointer,
    watchdog: Watchdog,
    metrics: TrainMetrics,
    topology: distributed.Topology,
    step: int,
    params: Any,
    opt_state: Any,
    loss: float,
) -> int:
    """SIGTERM reached some process: every process saves this step and leaves, inside the grace period."""
    watchdog.pause()
    began = time.perf_counter()
    if step not in saver.mngr.all_steps():
        saver.save(step, params, opt_state, {"step": step, "loss": loss})
    saver.finish()
    saver.mngr.close()
    metrics.preempted()
    emit(topology, event="preempted", step=step, save_s=round(time.perf_counter() - began, 3))
    return EXIT_PREEMPTED


def _init_from(cfg: JobConfig) -> model_store.LoadedModel | None:
    """The pretrained folder's model, checked: its config.json must describe the job's model."""
    if cfg.init_from_uri is None:
        return None
    loaded = model_store.load_hf_folder(cfg.init_from_uri)
    problem = model_store.mismatch(cfg.model, loaded.cfg)
    if problem is not None:
        raise distributed.ContractError(
            f"{cfg.init_from_uri}/{hf_config.CONFIG}: {problem}: the job's model must be the pretrained one"
        )
    return loaded


def _port_offset(topology: distributed.Topology) -> int:
    """Pods each have an address; local processes share one, so each takes the port plus its id."""
    return topology.process_id if os.environ.get(COORDINATOR, "").startswith("127.") else 0


def load_job_config() -> JobConfig:
    raw = os.environ.get(JOB_CONFIG_ENV)
    if not raw:
        raise distributed.ContractError(f"{JOB_CONFIG_ENV} is not set: it must hold the job's JSON config")
    return JobConfig.model_validate_json(raw)


def main() -> int:
    """A broken contract (bad config or environment) exits 2 and an untrusted state 3: neither heals on
    a restart. Anything else (a lost peer's failed collective) is left to raise: exit 1, a failure the
    group restarts from."""
    try:
        return run(load_job_config())
    except (
        distributed.ContractError,
        ValidationError,
        hf_config.ModelFolderError,
        TokenizerError,
        DataMismatchError,
    ) as exc:
        write_event({"event": "error", "message": str(exc)})
        return EXIT_CONTRACT
    except (DivergedError, checkpoint.CheckpointError) as exc:
        write_event({"event": "error", "message": str(exc)})
        return EXIT_UNTRUSTED


if __name__ == "__main__":
    code = main()
    sigterm.ignore()  # the exit code is decided: a SIGTERM from here on must not become the process's death
    sys.exit(code)
