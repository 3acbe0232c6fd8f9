"""The local target: a stack's workloads as processes on this machine, with the same environment contract.

Each JAX process gets JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
JAX_PROCESS_ID exactly as a pod would; bucket URIs become file:// directories
under a work directory, and nothing else changes. When a process dies the whole
group is stopped and started again, as JobSet does, and the program resumes
from its latest checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from meshstack.core.contract import (
    COORDINATOR,
    EXIT_PREEMPTED,
    JOB_CONFIG_ENV,
    NUM_PROCESSES,
    PROCESS_ID,
    RESTART_ATTEMPT_ENV,
    JobConfig,
    MeshConfig,
    ServeJobConfig,
    shape_problem,
)
from meshstack.core.errors import MeshstackError
from meshstack.core.spec import InferenceWorkload, StackSpec, StorageRef, TrainingWorkload
from workloads.jax.data import ensure_corpus
from workloads.jax.storage import file_uri

STOP_GRACE_S = 10.0
MAX_LOCAL_DEVICES = 4  # CPU devices one local process may simulate (XLA host device count)


class LocalRunError(MeshstackError):
    """A local workload failed; the message says which and where its logs are."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bucket_uri(root: Path, ref: StorageRef) -> str:
    return file_uri(root / "buckets" / ref.bucket / ref.prefix.strip("/"))


class ProcessGroup:
    """Processes started together and stopped together; process 0's JSON lines are events."""

    def __init__(self, module: str, envs: list[dict[str, str]], log_dir: Path, tag: str) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.procs: list[subprocess.Popen[str]] = []
        self.logs: list[Path] = []
        self._files: list[TextIO] = []
        for i, env in enumerate(envs):
            log = log_dir / f"{tag}-{i}.log"
            err = log.open("a")
            self._files.append(err)
            self.logs.append(log)
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", module],
                    env=env,
                    text=True,
                    stderr=err,
                    stdout=subprocess.PIPE if i == 0 else err,
                    start_new_session=True,
                )
            )
        threading.Thread(target=self._read, args=(self.procs[0],), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                self.events.put(json.loads(line))
        self.events.put(None)

    def returncodes(self) -> list[int | None]:
        return [p.poll() for p in self.procs]

    def kill(self, index: int) -> None:
        self.procs[index].kill()

    def stop(self) -> None:
        """SIGTERM, a grace period, then SIGKILL: nothing is left running."""
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for p in self.procs:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for f in self._files:
            f.close()


def process_env(config_json: str, devices: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        JOB_CONFIG_ENV: config_json,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "PYTHONUNBUFFERED": "1",
        **(extra or {}),
    }


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
        group = ProcessGroup("workloads.jax.train", envs, log_dir, job.name)

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


class LocalServer:
    """The inference server as a local process, up once it says it is serving."""

    def __init__(self, job: ServeJobConfig, log_dir: Path, timeout_s: float = 180) -> None:
        self.port = job.serve.port
        self.model = job.name  # what OpenAI clients name in "model"
        self.group = ProcessGroup("workloads.jax.serve", [process_env(job.model_dump_json(), 1)], log_dir, job.name)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                event = self.group.events.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                event = {"event": "timeout"}
            if event is not None and event.get("event") == "serving":
                return
            if event is None or event.get("event") == "timeout":
                self.group.stop()
                tail = self.group.logs[0].read_text().strip().splitlines()[-1:] or ["(no output)"]
                raise LocalRunError(
                    f"inference server '{job.name}' did not start: {tail[0]} (log: {self.group.logs[0]})"
                )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.group.stop()


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
    job = JobConfig(
        name=workload.name,
        model=workload.model,
        mesh=mesh,
        train=train,
        data_uri=bucket_uri(root, workload.data),
        checkpoint_uri=bucket_uri(root, workload.checkpoints),
    )
    return job, processes, devices


def local_serving(spec: StackSpec, workload: InferenceWorkload, root: Path, port: int) -> ServeJobConfig:
    serve = workload.serve.model_copy(update={"port": port})
    return ServeJobConfig(
        name=workload.name,
        model=workload.model,
        serve=serve,
        checkpoint_uri=bucket_uri(root, spec.checkpoints_of(workload)),
    )


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


def run_stack(
    spec: StackSpec, root: Path, max_processes: int, steps: int | None, port: int, out: TextIO = sys.stdout
) -> tuple[list[TrainResult], LocalServer | None]:
    """Train every training workload, then start the first inference service; the caller stops it."""
    results = []
    for workload in (w for w in spec.workloads if isinstance(w, TrainingWorkload)):
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
    if inference:
        server = LocalServer(local_serving(spec, inference[0], root, port), root / "logs")
        out.write(f"{inference[0].name}: serving on {server.url} (OpenAI API: /v1/completions, /v1/chat/completions)\n")
        out.flush()
    return results, server
