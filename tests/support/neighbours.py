"""A busy machine on purpose: a neighbour process that burns a core while a test runs, as other jobs do on
a shared node during a drain. Bounded by its own deadline, killed when the test ends."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

BURN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


@contextlib.contextmanager
def cpu_burner(seconds: float = 900, processes: int = 1) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`processes` interpreters spinning in a loop for at most `seconds` each (so a test killed
    outright leaves nothing running for long), ended with SIGKILL when the block exits."""
    burners = [
        subprocess.Popen([sys.executable, "-c", BURN.format(seconds=seconds)], stdin=subprocess.DEVNULL)
        for _ in range(processes)
    ]
    try:
        yield burners
    finally:
        for proc in burners:
            proc.kill()
            proc.wait()
