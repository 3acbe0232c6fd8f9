"""The trainer's Prometheus metrics: what its dashboards chart and its alerts watch.

Every process serves its own on `metrics_port` (pods each have an address; local processes add
their id to the port), labelled with its `process` id, so a scrape of any host shows that host's
view and a stalled host shows as the one whose step stopped moving.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from meshstack.core.observability import (
    TRAIN_CHECKPOINT_AGE,
    TRAIN_CHECKPOINT_INTERVAL,
    TRAIN_CHECKPOINT_SAVE_SECONDS,
    TRAIN_LAST_CHECKPOINT_TIME,
    TRAIN_LAST_STEP_TIME,
    TRAIN_LOSS,
    TRAIN_MFU,
    TRAIN_PREEMPTIONS,
    TRAIN_RESTARTS,
    TRAIN_STEP,
    TRAIN_STEP_SECONDS,
    TRAIN_TOKENS_PER_SECOND,
)


class TrainMetrics:
    def __init__(self, process: int, port: int | None, job: str, restarts: int) -> None:
        self.registry = CollectorRegistry()
        labels = ["job_name", "process"]
        self._values = {"job_name": job, "process": str(process)}

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, labels, registry=self.registry)

        self.step = gauge(TRAIN_STEP, "The last optimizer step finished.")
        self.loss = gauge(TRAIN_LOSS, "The training loss of the last step (NaN once it diverged).")
        self.step_seconds = gauge(TRAIN_STEP_SECONDS, "Wall time of the last step.")
        self.tokens_per_second = gauge(TRAIN_TOKENS_PER_SECOND, "Tokens per second over all processes, last step.")
        self.mfu = gauge(TRAIN_MFU, "Model FLOPs utilisation against the accelerator's catalog peak.")
        self.last_step = gauge(TRAIN_LAST_STEP_TIME, "Unix time the last step finished.")
        self.last_checkpoint = gauge(TRAIN_LAST_CHECKPOINT_TIME, "Unix time the last checkpoint became final.")
        self.checkpoint_interval = gauge(
            TRAIN_CHECKPOINT_INTERVAL, "Expected seconds between checkpoints: checkpoint_every times the step time."
        )
        self.save_seconds = gauge(TRAIN_CHECKPOINT_SAVE_SECONDS, "Wall time of the last save, until it was final.")
        self.restarts = gauge(TRAIN_RESTARTS, "How often the job's group was restarted (JobSet's restart attempt).")
        self.preemptions = Counter(TRAIN_PREEMPTIONS, "Saves made on SIGTERM.", labels, registry=self.registry)
        age = gauge(TRAIN_CHECKPOINT_AGE, "Seconds since the last checkpoint became final (or since start).")
        self._checkpoint_time = time.time()
        age.labels(**self._values).set_function(self.checkpoint_age)
        self.restarts.labels(**self._values).set(restarts)
        self.last_checkpoint.labels(**self._values).set(self._checkpoint_time)
        self.port = None
        if port is not None:
            server, _ = start_http_server(port, registry=self.registry)
            self.port = int(server.server_port)

    def checkpoint_age(self) -> float:
        return time.time() - self._checkpoint_time

    def stepped(
        self, step: int, loss: float, seconds: float, tokens_per_s: float, mfu: float | None, every: int
    ) -> None:
        v = self._values
        self.step.labels(**v).set(step)
        self.loss.labels(**v).set(loss)
        self.step_seconds.labels(**v).set(seconds)
        self.tokens_per_second.labels(**v).set(tokens_per_s)
        if mfu is not None:
            self.mfu.labels(**v).set(mfu)
        self.last_step.labels(**v).set(time.time())
        self.checkpoint_interval.labels(**v).set(every * seconds)

    def checkpointed(self, save_seconds: float) -> None:
        self._checkpoint_time = time.time()
        self.last_checkpoint.labels(**self._values).set(self._checkpoint_time)
        self.save_seconds.labels(**self._values).set(save_seconds)

    def preempted(self) -> None:
        self.preemptions.labels(**self._values).inc()
