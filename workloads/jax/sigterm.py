"""SIGTERM held from the trainer's first line to its last, so no moment of its life dies of it.

Python's default for SIGTERM is to die at once, and the trainer's real handling (JAX's preemption
service, or lifecycle.Preemption on one process) is only in place once jax is imported, the job is
read and jax.distributed is initialised: seconds on an idle machine, far longer on a busy node,
which is exactly when a drain comes. The same default comes back when the trainer hands SIGTERM
back at its end, while it still saves or shuts jax.distributed down, and the local group (or a
kubelet resending) signals it again: it then dies of the signal (-15) instead of leaving with 143,
and the group's preemption counts as a failure.

`hold()` runs before anything heavy is imported and records the signal instead. Whoever takes
SIGTERM over later reads `received()` and carries it on (lifecycle.Preemption hands it to JAX's
preemption sync, which has every process save at one step). This module imports nothing but the
standard library, so that holding it costs milliseconds.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_received = threading.Event()


def hold() -> None:
    """From now on SIGTERM is recorded, not fatal (call it first thing in the trainer's process)."""
    signal.signal(signal.SIGTERM, record)


def record(signum: int, frame: FrameType | None) -> None:
    """The handler itself: remembers that the process was asked to stop."""
    _received.set()


def ignore() -> None:
    """For the process's exit: Python's finalisation gives every signal it handled its default back
    (fatal, for SIGTERM) while jax.distributed still shuts down and XLA's objects are torn down, a
    second or more on a busy machine. An ignored signal keeps being ignored through it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def received() -> bool:
    """Whether SIGTERM reached this process while it was held."""
    return _received.is_set()
