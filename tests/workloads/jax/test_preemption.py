"""A trainer that survives what happens to real jobs, tried on real processes: SIGTERM on one host
(a drained node), kill -9 in the middle of a background save, a host that stops answering; and the
metrics it serves while it runs, read over HTTP with Prometheus' own parser."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from meshstack.core import observability as names
from meshstack.core.contract import EXIT_PREEMPTED, EXIT_STALLED
from meshstack.workloads.local import ProcessGroup, TrainResult, free_port, train
from meshstack.workloads.local import training as local_training
from tests.support.neighbours import cpu_burner
from tests.support.training_runs import EVERY, STEPS, job, losses, quiet


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("preemption")


@pytest.fixture(scope="module")
def reference(root: Path) -> TrainResult:
    return train(job(root, "reference"), processes=2, devices_per_process=1, log_dir=root / "logs", on_event=quiet)


@pytest.fixture
def busy() -> Iterator[None]:
    """A neighbour burning a core for the whole test: drains come to busy nodes."""
    with cpu_burner():
        yield


def assert_lost_no_step(result: TrainResult, reference: TrainResult, preempted: int) -> None:
    restored = [e["step"] for e in result.events if e.get("event") == "restored"]
    assert restored == [preempted], "resumed from the step saved on SIGTERM: no step lost"
    resumed = result.events[result.events.index({"event": "restored", "step": restored[0]}) :]
    assert next(e["step"] for e in resumed if e.get("event") == "step") == restored[0] + 1
    theirs, ours = losses(reference), losses(result)
    assert sorted(ours) == list(range(1, STEPS + 1))
    for step in range(1, STEPS + 1):
        assert ours[step] == pytest.approx(theirs[step], abs=2e-4), f"the loss curve continues at step {step}"


@pytest.mark.slow
def test_sigterm_on_one_host_saves_on_every_host_and_the_restart_loses_no_step(
    root: Path, reference: TrainResult, busy: None
) -> None:
    """A drain reaches one pod of a busy node: process 1 is signalled at step 2 of a job that
    checkpoints only at its end. The signal lands a few steps after the event that sent it (the test
    reads the events from a pipe while the processes run on), so the job keeps its one checkpoint at
    the last step: whatever step they agree on, the save on SIGTERM is off the schedule. JAX hears of
    the signal within a second; the steps left leave it several. Once they have agreed, every host
    is signalled again, as the local group's stop and a kubelet's resend do while they still save
    and shut down: that changes nothing."""
    exit_codes: list[list[int | None]] = []

    def drain_host_1(event: dict[str, Any], group: ProcessGroup, attempt: int) -> None:
        if attempt == 0 and event.get("event") == "step" and event["step"] == 2:
            group.procs[1].send_signal(signal.SIGTERM)
        if attempt == 0 and event.get("event") == "preempted":
            for proc in group.procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
        if event.get("event") == "restarting":
            exit_codes.append(event["exit_codes"])

    result = train(
        job(root, "drained", checkpoint_every=STEPS),
        processes=2,
        devices_per_process=1,
        log_dir=root / "logs",
        on_event=drain_host_1,
    )
    [preempted] = [e for e in result.events if e.get("event") == "preempted"]
    assert 2 < preempted["step"] < STEPS, "saved on SIGTERM, off the checkpoint schedule"
    # Process 0 speaks for the group (it prints the events) and was never signalled: it stopped because
    # process 1 was.
    assert exit_codes == [[EXIT_PREEMPTED, EXIT_PREEMPTED]], "both processes saved and left with 143"
    assert (result.preemptions, result.restarts) == (1, 0), "a preemption is not a failure"
    assert_lost_no_step(result, reference, preempted["step"])


def catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (its SigCgt mask in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


@pytest.mark.slow
def test_sigterm_during_start_up_is_kept_until_every_host_can_save(
    root: Path, reference: TrainResult, busy: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pod drained while it starts (imports jax, reads its job, joins the others, compiles) is the
    normal case on a busy node. Process 1 is signalled the moment it catches SIGTERM at all, long before
    JAX's preemption service listens: the signal must neither kill it (-15, a failure) nor be lost (the
    job running on past its drain); every host saves the first step and leaves with 143."""
    signalled: list[float] = []

    class DrainedAtStart(ProcessGroup):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if signalled:
                return
            began, proc = time.monotonic(), self.procs[1]
            while not catches_sigterm(proc.pid):
                assert proc.poll() is None and time.monotonic() - began < 120, "the trainer never caught SIGTERM"
                time.sleep(0.002)
            proc.send_signal(signal.SIGTERM)
            signalled.append(time.monotonic() - began)

    monkeypatch.setattr(local_training, "ProcessGroup", DrainedAtStart)
    exit_codes: list[list[int | None]] = []

    def codes(event: dict[str, Any], group: ProcessGroup, attempt: int) -> None:
        if event.get("event") == "restarting":
            exit_codes.append(event["exit_codes"])

    result = train(
        job(root, "drained-at-start", checkpoint_every=STEPS),
        processes=2,
        devices_per_process=1,
        log_dir=root / "logs",
        on_event=codes,
    )
    assert signalled, "process 1 was signalled while it started"
    preempted = [e["step"] for e in result.events if e.get("event") == "preempted"]
    assert preempted == [1], f"the first step every host reached was saved (signalled {signalled[0]:.2f} s in)"
    assert exit_codes == [[EXIT_PREEMPTED, EXIT_PREEMPTED]], "both processes saved and left with 143"
    assert (result.preemptions, result.restarts) == (1, 0)
    assert_lost_no_step(result, reference, 1)


@pytest.mark.slow
def test_kill_9_during_a_background_save_leaves_the_previous_checkpoint_as_latest(root: Path) -> None:
    """Saves run while training goes on; killing everything while one is being written must leave
    the last final step in charge, and the half-written one must never be restored."""
    folder = root / "killed-saving"
    seen: dict[str, Any] = {}

    def kill_mid_save(event: dict[str, Any], group: ProcessGroup, attempt: int) -> None:
        if attempt == 0 and event.get("event") == "checkpoint_started" and event["step"] == 2 * EVERY:
            for proc in group.procs:
                os.killpg(proc.pid, signal.SIGKILL)
            seen["listing"] = sorted(p.name for p in folder.iterdir())

    result = train(
        job(root, "killed-saving"),
        processes=2,
        devices_per_process=1,
        log_dir=root / "logs",
        on_event=kill_mid_save,
    )
    listing = seen["listing"]
    assert str(EVERY) in listing and str(2 * EVERY) not in listing, f"the save of step 16 was in flight: {listing}"
    assert any(name.startswith(f"{2 * EVERY}.orbax-checkpoint-tmp") for name in listing), listing
    restored = [e["step"] for e in result.events if e.get("event") == "restored"]
    assert restored == [EVERY], "the previous checkpoint stayed the latest"
    assert result.restarts == 1
    left = sorted(p.name for p in folder.iterdir())
    assert not [n for n in left if "tmp" in n], f"the half-written save was cleaned up: {left}"
    assert any(e.get("event") == "done" for e in result.events)


@pytest.mark.slow
def test_a_host_that_stops_answering_ends_in_a_clear_exit_and_a_restart(root: Path) -> None:
    """Process 1 is frozen (SIGSTOP) once step 8's checkpoint is final: process 0 waits in its next
    collective until the watchdog ends it."""
    exit_codes: list[list[int | None]] = []

    def freeze_host_1(event: dict[str, Any], group: ProcessGroup, attempt: int) -> None:
        if attempt == 0 and event.get("event") == "checkpoint" and event["step"] == EVERY:
            os.kill(group.procs[1].pid, signal.SIGSTOP)
        if event.get("event") == "restarting":
            exit_codes.append(event["exit_codes"])

    began = time.monotonic()
    result = train(
        job(root, "frozen", stall_timeout_s=4),
        processes=2,
        devices_per_process=1,
        log_dir=root / "logs",
        on_event=freeze_host_1,
    )
    [stalled] = [e for e in result.events if e.get("kind") == "stalled"]
    assert "no training step finished for" in stalled["message"]
    assert exit_codes[0][0] == EXIT_STALLED, "process 0 left on its own, with the stall's exit code"
    assert result.restarts == 1, "a stall counts as a failure"
    assert [e["step"] for e in result.events if e.get("event") == "restored"] == [EVERY]
    assert any(e.get("event") == "done" for e in result.events)
    assert time.monotonic() - began < 300


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


@pytest.mark.slow
def test_every_process_serves_its_training_metrics(root: Path) -> None:
    base = free_port()
    scraped: dict[int, dict[str, dict[tuple[tuple[str, str], ...], float]]] = {}

    def read_metrics(event: dict[str, Any], group: ProcessGroup, attempt: int) -> None:
        if event.get("event") == "checkpoint" and event["step"] == EVERY and not scraped:
            time.sleep(0.5)  # process 1 records the same checkpoint a moment later
            scraped[0], scraped[1] = scrape(base), scrape(base + 1)

    train(
        job(root, "watched").model_copy(update={"metrics_port": base}),
        processes=2,
        devices_per_process=1,
        log_dir=root / "logs",
        on_event=read_metrics,
        extra_env={"MESHSTACK_RESTART_ATTEMPT": "3"},
    )
    for process in (0, 1):
        metrics = scraped[process]
        labels = (("job_name", "watched"), ("process", str(process)))
        step = metrics[names.TRAIN_STEP][labels]
        assert EVERY <= step <= STEPS
        assert metrics[names.TRAIN_LOSS][labels] > 0
        assert metrics[names.TRAIN_TOKENS_PER_SECOND][labels] > 0
        assert 0 <= metrics[names.TRAIN_CHECKPOINT_AGE][labels] < 30
        assert metrics[names.TRAIN_CHECKPOINT_SAVE_SECONDS][labels] > 0
        assert metrics[names.TRAIN_RESTARTS][labels] == 3
        assert metrics[names.TRAIN_LAST_STEP_TIME][labels] == pytest.approx(time.time(), abs=120)
