"""meshstack's own trainer as local processes: restarted as a group, as JobSet does, until it is done."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from meshstack.core.contract import (
    COORDINATOR,
    EXIT_PREEMPTED,
    NUM_PROCESSES,
    PROCESS_ID,
    RESTART_ATTEMPT_ENV,
    TRAINER_COMMAND,
    JobConfig,
    MeshConfig,
    shape_problem,
)
from meshstack.core.spec import StackSpec, StorageRef, TrainingWorkload
from meshstack.workloads.jax.storage import file_uri
from meshstack.workloads.local.processes import (
    LocalRunError,
    ProcessGroup,
    bucket_uri,
    free_port,
    process_env,
    python_module,
)

MAX_LOCAL_DEVICES = 4  # CPU devices one local process may simulate (XLA host device count)
MAX_PREEMPTIONS = 100  # restarts after a preemption do not count against max_restarts, but they end


@dataclass
class TrainResult:
    events: list[dict[str, Any]] = field(default_factory=list)
    restarts: int = 0
    preemptions: int = 0

    @property
    def final_loss(self) -> float:
        return float(next(e["loss"] for e in reversed(self.events) if e.get("event") == "done"))


EventHook = Callable[[dict[str, Any], ProcessGroup, int], None]


def watch(group: ProcessGroup, handle: Callable[[dict[str, Any]], Any], finish_timeout_s: float = 120) -> None:
    """Hand process 0's events to `handle` until it exits; stop early once any process fails,
    since the others would wait for it in their next collective.
    """
    while True:
        try:
            event = group.events.get(timeout=0.2)
        except queue.Empty:
            event = {}
        if event is None:
            break
        if event:
            handle(event)
        if any(code not in (None, 0) for code in group.returncodes()):
            _last_words(group, handle)
            return
    # Process 0 is done talking: wait for the others to exit, but not for one that can no longer
    # finish because another has failed (a host frozen in a collective waits for ever).
    deadline = time.monotonic() + finish_timeout_s
    while time.monotonic() < deadline:
        codes = group.returncodes()
        if all(code is not None for code in codes) or any(code not in (None, 0) for code in codes):
            return
        time.sleep(0.05)


def _last_words(group: ProcessGroup, handle: Callable[[dict[str, Any]], Any], timeout_s: float = 5) -> None:
    """What process 0 wrote before it ended (the error it died of): its pipe may still hold lines
    when its exit is seen."""
    if group.procs[0].poll() is None:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            event = group.events.get(timeout=0.2)
        except queue.Empty:
            continue
        if event is None:
            return
        handle(event)


def train(
    job: JobConfig,
    processes: int,
    devices_per_process: int,
    log_dir: Path,
    on_event: EventHook,
    max_restarts: int = 3,
    extra_env: dict[str, str] | None = None,
) -> TrainResult:
    """Run a training job as `processes` local processes, restarting the group when one fails.

    As the JobSet's failure policy does: a group that stopped on SIGTERM (exit 143 from every
    process) is restarted without counting against max_restarts; a failure counts.
    """
    result = TrainResult()
    failures = 0
    while True:
        attempt = failures + result.preemptions
        port = free_port()
        envs = [
            process_env(
                job.model_dump_json(),
                devices_per_process,
                {
                    COORDINATOR: f"127.0.0.1:{port}",
                    NUM_PROCESSES: str(processes),
                    PROCESS_ID: str(i),
                    RESTART_ATTEMPT_ENV: str(attempt),
                    **(extra_env or {}),
                },
            )
            for i in range(processes)
        ]
        group = ProcessGroup(python_module(TRAINER_COMMAND), envs, log_dir, job.name)

        def record(event: dict[str, Any], group: ProcessGroup = group, attempt: int = attempt) -> None:
            result.events.append(event)
            on_event(event, group, attempt)

        try:
            watch(group, record)
        finally:
            group.stop()
        codes = group.returncodes()
        if all(c == 0 for c in codes) and any(e.get("event") == "done" for e in result.events):
            return result
        preempted = all(c == EXIT_PREEMPTED for c in codes) and result.preemptions < MAX_PREEMPTIONS
        if preempted:
            result.preemptions += 1
        else:
            errors = [e["message"] for e in result.events if e.get("event") == "error" and e.get("kind") != "stalled"]
            if errors:
                raise LocalRunError(f"training job '{job.name}' failed: {errors[-1]}")
            failures += 1
            result.restarts = failures
            if failures > max_restarts:
                logs = ", ".join(str(p) for p in group.logs)
                raise LocalRunError(f"training job '{job.name}' failed {failures} times; logs: {logs}")
        record({"event": "restarting", "attempt": attempt + 1, "exit_codes": codes, "preempted": preempted})


def _init_from(root: Path, ref: StorageRef | str | None) -> str | None:
    """The pretrained folder here: a bucket's directory, or the path itself (relative to the working directory)."""
    if ref is None:
        return None
    if isinstance(ref, str):
        return ref if "://" in ref else file_uri(Path(ref))
    return bucket_uri(root, ref)


def local_training(
    spec: StackSpec, workload: TrainingWorkload, root: Path, max_processes: int, steps: int | None = None
) -> tuple[JobConfig, int, int]:
    """The job as it runs here: the spec's processes (capped), buckets mapped to directories.

    When the cap cuts the process count, or the spec's devices per process are more
    than MAX_LOCAL_DEVICES CPU devices can stand in for, the mesh becomes plain data
    parallelism over one device per process; everything else is the spec's.
    """
    processes = min(workload.processes, max_processes)
    devices = spec.devices_per_process(workload)
    mesh = workload.mesh
    if processes != workload.processes or devices > MAX_LOCAL_DEVICES:
        devices, mesh = 1, MeshConfig(data=processes)
    train = workload.train if steps is None else workload.train.model_copy(update={"steps": steps})
    problem = shape_problem(workload.model, mesh, train)
    if problem is not None:
        raise LocalRunError(
            f"workload '{workload.name}' cannot run on {processes} local process(es): {problem[0]}: {problem[1]}"
        )
    assert workload.data is not None and workload.checkpoints is not None, "validated: the trainer has both"
    job = JobConfig(
        name=workload.name,
        model=workload.model,
        mesh=mesh,
        train=train,
        data_uri=bucket_uri(root, workload.data),
        checkpoint_uri=bucket_uri(root, workload.checkpoints),
        init_from_uri=_init_from(root, workload.init_from),
    )
    return job, processes, devices


def progress(out: TextIO, name: str, steps: int) -> EventHook:
    def show(event: dict[str, Any], group: ProcessGroup, attempt: int) -> None:
        kind = event.get("event")
        if kind == "start":
            out.write(
                f"{name}: {event['processes']} processes, {event['devices']} devices ({event['platform']}), "
                f"{event['params']:,} parameters, from step {event['step']}\n"
            )
        elif kind == "step":
            out.write(
                f"{name}: step {event['step']}/{steps}  loss {event['loss']:.4f}  "
                f"{event['tokens_per_s']:,.0f} tokens/s  {event['step_time_s'] * 1000:.1f} ms/step\n"
            )
        elif kind == "restored":
            out.write(f"{name}: resumed from the checkpoint of step {event['step']}\n")
        elif kind == "preempted":
            out.write(f"{name}: stopped on SIGTERM after saving step {event['step']} ({event['save_s']} s)\n")
        elif kind == "restarting" and event.get("preempted"):
            out.write(f"{name}: restarting the group after its preemption (not counted as a failure)\n")
        elif kind == "restarting":
            out.write(f"{name}: a process failed (exit codes {event['exit_codes']}); restarting the group\n")
        out.flush()

    return show
