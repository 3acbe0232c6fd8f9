"""meshstack's inference server as a local process."""

from __future__ import annotations

import queue
import time
from pathlib import Path

from meshstack.core.contract import SERVER_COMMAND, ServeJobConfig
from meshstack.core.spec import InferenceWorkload, StackSpec
from meshstack.workloads.local.processes import LocalRunError, ProcessGroup, bucket_uri, process_env, python_module


class LocalServer:
    """The inference server as a local process, up once it says it is serving."""

    def __init__(self, job: ServeJobConfig, log_dir: Path, timeout_s: float = 180) -> None:
        self.port = job.serve.port
        self.model = job.name  # what OpenAI clients name in "model"
        self.group = ProcessGroup(
            python_module(SERVER_COMMAND), [process_env(job.model_dump_json(), 1)], log_dir, job.name
        )
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


def local_serving(spec: StackSpec, workload: InferenceWorkload, root: Path, port: int) -> ServeJobConfig:
    serve = workload.serve.model_copy(update={"port": port})
    return ServeJobConfig(
        name=workload.name,
        model=workload.model,
        serve=serve,
        checkpoint_uri=bucket_uri(root, spec.checkpoints_of(workload)),
    )
