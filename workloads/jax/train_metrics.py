"""The trainer's Prometheus metrics: what its dashboards chart and its alerts watch.

Every process serves its own on `metrics_port` (pods each have an address; local processes add
their id to the port), labelled with its `process` id, so a scrape of any host shows that host's
view and a stalled host shows as the one whose step stopped moving.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

PREFIX = "meshstack_train_"
# The names the dashboards and alert rules refer to; one place, so a rename breaks the tests.
STEP = f"{PREFIX}step"
LOSS = f"{PREFIX}loss"
STEP_SECONDS = f"{PREFIX}step_seconds"
TOKENS_PER_SECOND = f"{PREFIX}tokens_per_second"
MFU = f"{PREFIX}mfu"
LAST_STEP_TIME = f"{PREFIX}last_step_timestamp_seconds"
LAST_CHECKPOINT_TIME = f"{PREFIX}last_checkpoint_timestamp_seconds"
CHECKPOINT_AGE = f"{PREFIX}checkpoint_age_seconds"
CHECKPOINT_INTERVAL = f"{PREFIX}checkpoint_interval_seconds"
CHECKPOINT_SAVE_SECONDS = f"{PREFIX}checkpoint_save_seconds"
RESTARTS = f"{PREFIX}restarts"
PREEMPTIONS = f"{PREFIX}preemptions_total"


class TrainMetrics:
    def __init__(self, process: int, port: int | None, job: str, restarts: int) -> None:
        self.registry = CollectorRegistry()
        labels = ["job_name", "process"]
        self._values = {"job_name": job, "process": str(process)}

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, labels, registry=self.registry)

        self.step = gauge(STEP, "The last optimizer step finished.")
        self.loss = gauge(LOSS, "The training loss of the last step (NaN once it diverged).")
        self.step_seconds = gauge(STEP_SECONDS, "Wall time of the last step.")
        self.tokens_per_second = gauge(TOKENS_PER_SECOND, "Tokens per second over all processes, last step.")
        self.mfu = gauge(MFU, "Model FLOPs utilisation against the accelerator's catalog peak.")
        self.last_step = gauge(LAST_STEP_TIME, "Unix time the last step finished.")
        self.last_checkpoint = gauge(LAST_CHECKPOINT_TIME, "Unix time the last checkpoint became final.")
        self.checkpoint_interval = gauge(
            CHECKPOINT_INTERVAL, "Expected seconds between checkpoints: checkpoint_every times the step time."
        )
        self.save_seconds = gauge(CHECKPOINT_SAVE_SECONDS, "Wall time of the last save, until it was final.")
        self.restarts = gauge(RESTARTS, "How often the job's group was restarted (JobSet's restart attempt).")
        self.preemptions = Counter(PREEMPTIONS, "Saves made on SIGTERM.", labels, registry=self.registry)
        age = gauge(CHECKPOINT_AGE, "Seconds since the last checkpoint became final (or since start).")
        self._checkpoint_time = time.time()
        age.labels(**self._values).set_function(lambda: time.time() - self._checkpoint_time)
        self.restarts.labels(**self._values).set(restarts)
        self.last_checkpoint.labels(**self._values).set(self._checkpoint_time)
        self.port = None
        if port is not None:
            server, _ = start_http_server(port, registry=self.registry)
            self.port = int(server.server_port)

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
