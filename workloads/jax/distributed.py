"""Multi-host start-up from the environment contract, the same on Kubernetes and on the local target.

GPU and CPU hosts get JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
JAX_PROCESS_ID (as Kubeflow Trainer names them). TPU slices on GKE set
TPU_WORKER_HOSTNAMES and TPU_WORKER_ID, and jax finds everything itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import jax

from meshstack.core.contract import COORDINATOR, NUM_PROCESSES, PROCESS_ID, TPU_HOSTS


class ContractError(RuntimeError):
    """The environment contract is incomplete or inconsistent."""


@dataclass(frozen=True)
class Topology:
    process_id: int
    process_count: int
    local_devices: int
    global_devices: int
    platform: str


def initialize() -> Topology:
    if os.environ.get(TPU_HOSTS):
        jax.distributed.initialize()
    elif os.environ.get(COORDINATOR):
        try:
            count, index = int(os.environ[NUM_PROCESSES]), int(os.environ[PROCESS_ID])
        except (KeyError, ValueError) as exc:
            raise ContractError(
                f"{COORDINATOR} is set, so {NUM_PROCESSES} and {PROCESS_ID} must be integers too"
            ) from exc
        if not 0 <= index < count:
            raise ContractError(f"{PROCESS_ID}={index} is outside 0..{count - 1}")
        if count > 1:
            # CPU processes need a collectives backend to talk across processes.
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
            jax.distributed.initialize(os.environ[COORDINATOR], num_processes=count, process_id=index)
    return Topology(
        process_id=jax.process_index(),
        process_count=jax.process_count(),
        local_devices=jax.local_device_count(),
        global_devices=jax.device_count(),
        platform=jax.devices()[0].platform,
    )


def barrier(name: str) -> None:
    """Every process waits here until all have arrived (a no-op for one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
