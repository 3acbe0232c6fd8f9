"""A program meshstack does not know (a user's `command`, or MaxText's) as local processes, under the
same contract and failure rules as its pods.

Its output is streamed behind each process's index. The group is restarted as JobSet restarts it:
a group that every process left with SIGTERM's 143 (or died of the signal) is restarted without
counting; a contract error (exit 2) ends the run at once; anything else counts against
max_restarts. The run ends with the program's own exit status.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from meshstack.core.contract import (
    CHECKPOINT_URI_ENV,
    DATA_URI_ENV,
    EXIT_CONTRACT,
    EXIT_PREEMPTED,
    GRACE_SECONDS_ENV,
    INDEX_ENV,
    MASTER_PORT,
    PET_MASTER_PORT,
    RESTART_ATTEMPT_ENV,
    host_contract,
)
from meshstack.core.programs import maxtext
from meshstack.core.spec import StackSpec, TrainingWorkload
from meshstack.core.spec.workload import PROGRAM_GRACE_SECONDS
from meshstack.workloads.local.processes import (
    LocalRunError,
    ProcessGroup,
    bucket_uri,
    free_port,
    process_env,
    watch_exits,
)
from meshstack.workloads.local.training import MAX_PREEMPTIONS

LOCALHOST = "127.0.0.1"


class ProgramFailedError(LocalRunError):
    """The program ended with a non-zero status: `meshstack run` exits with it."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.exit_code = status


@dataclass(frozen=True)
class LocalProgram:
    argv: list[str]
    envs: list[dict[str, str]]
    cwd: Path


def program_argv(workload: TrainingWorkload, processes: int, devices: int) -> list[str]:
    if workload.custom:
        return [*(workload.command or ()), *workload.args]
    return maxtext.command(workload.name, workload.train, workload.mesh, "none", devices, processes, workload.maxtext)


def local_program(
    spec: StackSpec, workload: TrainingWorkload, root: Path, processes: int, devices: int, attempt: int, cwd: Path
) -> LocalProgram:
    """Each process's environment, as its pod's: the contract on loopback, buckets as file:// folders."""
    coordinator, torch_port = free_port(), free_port()
    contract = host_contract(LOCALHOST, coordinator, processes, devices)
    # a free port, not the pods' TORCH_MASTER_PORT: local runs may overlap on one machine
    contract[MASTER_PORT] = contract[PET_MASTER_PORT] = str(torch_port)
    storage = {
        name: bucket_uri(root, ref)
        for name, ref in ((CHECKPOINT_URI_ENV, workload.checkpoints), (DATA_URI_ENV, workload.data))
        if ref is not None
    }
    own = {} if workload.custom else maxtext.environment("none", LOCALHOST, coordinator, processes)
    envs = []
    for i in range(processes):
        env = {
            **contract,
            **dict.fromkeys(INDEX_ENV, str(i)),
            **storage,
            GRACE_SECONDS_ENV: str(workload.grace_seconds or PROGRAM_GRACE_SECONDS),
            RESTART_ATTEMPT_ENV: str(attempt),
            **own,
            **workload.env,
        }
        envs.append(process_env(None, devices, env))
    return LocalProgram(program_argv(workload, processes, devices), envs, cwd)


def _status(code: int | None) -> int:
    """A process's exit status as a shell reports it (128 + N for a signal)."""
    if code is None:
        return 1
    return 128 - code if code < 0 else code


def run_program(
    spec: StackSpec, workload: TrainingWorkload, root: Path, max_processes: int, out: TextIO, cwd: Path
) -> None:
    """Run until every process exits 0; raise ProgramFailedError with the status it ended with otherwise."""
    processes = min(workload.processes, max_processes)
    devices = min(spec.devices_per_process(workload), 4)
    lock = threading.Lock()

    def stream(index: int, line: str) -> None:
        with lock:
            out.write(f"[{workload.name}/{index}] {line}\n")
            out.flush()

    failures = preemptions = 0
    while True:
        attempt = failures + preemptions
        program = local_program(spec, workload, root, processes, devices, attempt, cwd)
        try:
            group = ProcessGroup(program.argv, program.envs, root / "logs", workload.name, stream, program.cwd)
        except OSError as exc:
            message = f"training workload '{workload.name}' could not start {program.argv[0]}: {exc.strerror}"
            raise ProgramFailedError(message, 127) from None
        try:
            watch_exits(group)
        finally:
            group.stop()
            group.wait_output()
        statuses = [_status(c) for c in group.returncodes()]
        if all(s == 0 for s in statuses):
            return
        failed = next(s for s in statuses if s != 0)
        if all(s == EXIT_PREEMPTED for s in statuses) and preemptions < MAX_PREEMPTIONS:
            preemptions += 1
            stream(0, "preempted (exit 143 on every process); restarting the group, not counted as a failure")
            continue
        if EXIT_CONTRACT in statuses:
            raise ProgramFailedError(
                f"training workload '{workload.name}' exited {EXIT_CONTRACT} (a configuration error): not retried",
                EXIT_CONTRACT,
            )
        failures += 1
        if failures > workload.max_restarts:
            raise ProgramFailedError(
                f"training workload '{workload.name}' failed {failures} times (exit status {failed}); "
                f"logs: {root / 'logs'}",
                failed,
            )
        stream(
            0, f"a process failed (exit statuses {statuses}); restarting the group ({failures}/{workload.max_restarts})"
        )
