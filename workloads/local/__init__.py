"""The local target: a stack's workloads as processes on this machine, with the same environment contract.

Each process gets the variables its pod would (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
JAX_PROCESS_ID, the storage URIs, the torchrun variables); bucket URIs become file:// directories
under a work directory, and nothing else changes. When a process dies the whole group is stopped
and started again, as JobSet does, and the program resumes from its latest checkpoint.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from meshstack.core.spec import InferenceWorkload, StackSpec, TrainingWorkload
from meshstack.workloads.jax.data import ensure_corpus
from meshstack.workloads.local.processes import LocalRunError, ProcessGroup, free_port
from meshstack.workloads.local.programs import ProgramFailedError, run_program
from meshstack.workloads.local.serving import LocalServer, local_serving
from meshstack.workloads.local.training import TrainResult, local_training, progress, train

__all__ = [
    "LocalRunError",
    "LocalServer",
    "ProcessGroup",
    "ProgramFailedError",
    "TrainResult",
    "free_port",
    "local_training",
    "progress",
    "run_stack",
    "train",
]


def run_stack(
    spec: StackSpec,
    root: Path,
    max_processes: int,
    steps: int | None,
    port: int,
    out: TextIO = sys.stdout,
    cwd: Path | None = None,
) -> tuple[list[TrainResult], LocalServer | None]:
    """Train every training workload, then start the first inference service meshstack's server runs
    here; the caller stops it. A program of the user's own runs in `cwd` (the project's folder)."""
    results = []
    for workload in (w for w in spec.workloads if isinstance(w, TrainingWorkload)):
        if workload.custom or workload.program != "meshstack":
            run_program(spec, workload, root, max_processes, out, cwd or Path.cwd())
            continue
        job, processes, devices = local_training(spec, workload, root, max_processes, steps)
        ensure_corpus(job.data_uri)
        log_every = max(job.train.steps // 20, 1)
        job = job.model_copy(update={"train": job.train.model_copy(update={"log_every": log_every})})
        results.append(
            train(
                job,
                processes,
                devices,
                root / "logs",
                progress(out, workload.name, job.train.steps),
                max_restarts=workload.max_restarts,
            )
        )
    server = None
    inference = [w for w in spec.workloads if isinstance(w, InferenceWorkload)]
    for other in (w for w in inference if w.engine != "meshstack"):
        out.write(f"{other.name}: engine {other.engine} runs on its cluster only; not started here\n")
    ours = [w for w in inference if w.engine == "meshstack"]
    if ours:
        server = LocalServer(local_serving(spec, ours[0], root, port), root / "logs")
        out.write(f"{ours[0].name}: serving on {server.url} (OpenAI API: /v1/completions, /v1/chat/completions)\n")
    out.flush()
    return results, server
