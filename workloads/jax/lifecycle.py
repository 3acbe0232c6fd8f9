"""How a training process ends on purpose: on SIGTERM at a step boundary every process agrees on, and
on a stall, by itself.

A node drain, a spot reclaim or a scale-down sends SIGTERM to the pods on that node only. A JAX
job's processes save collectively, so the one that was told must tell the others before anyone
saves, and all of them must stop at the same step: JAX's preemption service does exactly that
through its coordination service (no collective on the training path). The save runs on the main
thread, between steps.

A step that never finishes (a hung collective, a host that died without a word) would otherwise
hold the job until its deadline. The watchdog thread ends the process with EXIT_STALLED once no
step has finished for `stall_timeout_s`, so the group is restarted from its last checkpoint.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

import jax

from meshstack.core.contract import EXIT_STALLED
from meshstack.workloads.jax import sigterm
from meshstack.workloads.jax.events import write_event


class Preemption:
    """Whether to save and stop now. Several processes use JAX's preemption service: its coordination
    service catches SIGTERM on any of them and has all of them agree on the step to stop at. A
    single process has no coordination service: SIGTERM sets a flag here instead.

    Until jax.distributed is initialised, JAX's service does not listen: a SIGTERM then is caught
    here (or, earlier still, by workloads/jax/sigterm.py) and handed to the service by `joined()`."""

    def __init__(self) -> None:
        self._requested = threading.Event()
        self._previous = signal.signal(signal.SIGTERM, self._on_signal)
        if sigterm.received():
            self._requested.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._requested.set()

    def joined(self) -> None:
        """Call right after jax.distributed is initialised. Its preemption service has taken SIGTERM
        over from here on; one that came before is sent again, to the service, so every process still
        agrees on a step, saves it and leaves with 143 (rather than this one alone, with nothing saved)."""
        if jax.process_count() > 1 and self._requested.is_set():
            os.kill(os.getpid(), signal.SIGTERM)

    def close(self) -> None:
        """Hand SIGTERM back to whoever had it: a test runner calling the trainer in process, or, in the
        trainer's own process, sigterm.hold()'s recorder, so a signal during the exit that follows (the
        local group stops what is left with SIGTERM) cannot turn a 143 into a death by signal."""
        signal.signal(signal.SIGTERM, self._previous)

    def agreed(self, step: int) -> bool:
        """True on every process at the same step, once any was asked to stop; call it after each step."""
        if jax.process_count() == 1:
            return self._requested.is_set()
        from jax.experimental import multihost_utils

        return bool(multihost_utils.reached_preemption_sync_point(step))


class Watchdog:
    """Ends the process when no step has finished for `timeout_s`. It arms at the first `beat()` (the
    first step compiles, which may take long) and `pause()` holds it while the trainer waits for a
    whole save (on SIGTERM, at the end). A periodic save only holds the loop while it copies to the
    host and waits for the previous save: that counts, since a lost host stalls it too."""

    def __init__(self, timeout_s: float, on_stall: Callable[[float], None] | None = None) -> None:
        self.timeout_s = timeout_s
        self._last: float | None = None
        self._paused = False
        self._lock = threading.Lock()
        self._on_stall = on_stall or _report_and_exit
        self._stopped = threading.Event()
        threading.Thread(target=self._watch, name="meshstack-watchdog", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def beat(self) -> None:
        with self._lock:
            self._last = time.monotonic()
            self._paused = False

    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def _watch(self) -> None:
        interval = min(1.0, self.timeout_s / 4)
        while not self._stopped.wait(interval):
            with self._lock:
                idle = None if self._last is None or self._paused else time.monotonic() - self._last
            if idle is not None and idle > self.timeout_s:
                self._on_stall(idle)
                return


def _report_and_exit(idle: float) -> None:
    """The main thread is stuck in a collective that will never return: leave from here, at once."""
    message = (
        f"no training step finished for {idle:.0f} s (train.stall_timeout_s): a collective is hung or a "
        "host is gone; exiting so the group restarts from its last checkpoint"
    )
    write_event({"event": "error", "kind": "stalled", "message": message})
    os._exit(EXIT_STALLED)
