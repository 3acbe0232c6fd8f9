"""The engine a serving job asks for: its checkpoint's model, int8 where asked, on this host's devices."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from meshstack.core.contract import ServeJobConfig, tensor_problem
from meshstack.workloads.jax import model_store
from meshstack.workloads.jax.engine.core import Engine
from meshstack.workloads.jax.engine.stats import Observer
from meshstack.workloads.jax.quantize import quantize_int8


def compute_dtype(setting: str) -> jnp.dtype:
    if setting == "auto":
        return jnp.bfloat16 if jax.devices()[0].platform in ("gpu", "tpu", "cuda", "rocm") else jnp.float32
    return jnp.dtype(setting)


def load_params(job: ServeJobConfig) -> Any:
    """The newest trustworthy checkpoint's weights (damaged steps are said and skipped)."""
    return model_store.restore_params(job.checkpoint_uri, job.model)


def load_engine(job: ServeJobConfig, observer: Observer) -> Engine:
    """The checkpoint's model (meshstack's own or a Hugging Face folder, workloads/jax/model_store.py), int8
    where asked, sharded over this host's devices (serve.tensor_parallel of them, when given)."""
    declared = job.model if "model" in job.model_fields_set else None  # a stack's; `meshstack serve` gives none
    loaded = model_store.load_served(job.checkpoint_uri, job.model, declared)
    params = loaded.params
    if job.serve.quantization == "int8":
        params = quantize_int8(params)
    serve = job.serve
    devices = jax.local_devices()
    if serve.tensor_parallel is not None:
        if serve.tensor_parallel > len(devices):
            raise ValueError(f"serve.tensor_parallel {serve.tensor_parallel}: this host has {len(devices)} device(s)")
        problem = tensor_problem(loaded.cfg, serve.tensor_parallel, "serve.tensor_parallel")
        if problem is not None:
            raise ValueError(problem[1])
        usable = devices[: serve.tensor_parallel]
    else:
        usable = devices if tensor_problem(loaded.cfg, len(devices), "") is None else devices[:1]
    return Engine(
        params,
        loaded.cfg,
        max_batch=serve.max_batch_size,
        max_waiting=serve.max_queue,
        kv_cache_gib=serve.kv_cache_gib,
        dtype=compute_dtype(serve.compute_dtype),
        prefill_chunk=serve.prefill_chunk,
        prefix_cache=serve.prefix_cache,
        devices=usable,
        observer=observer,
        tokenizer=loaded.tokenizer,
        max_seq_len=serve.max_seq_len,
    )
