"""The programs' JSON lines on stdout: what the local target and the pod logs read.

Several threads write them (the training loop, the checkpoint finalizer, the watchdog). print()
writes the text and its newline separately, so two threads can interleave into one line that is
no JSON at all, and both events are lost: each line goes out here in one write, under a lock.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

_LOCK = threading.Lock()


def write_event(event: dict[str, Any]) -> None:
    line = json.dumps(event) + "\n"
    with _LOCK:
        sys.stdout.write(line)
        sys.stdout.flush()
