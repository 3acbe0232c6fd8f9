"""Ctrl-C during a preview: one line and exit 130, never the Pulumi SDK's pending tasks unwinding.

The signal is sent when the preview has reached the phase under test, not after a guessed delay: a
small launcher holds the real CLI at that phase (the first import of a cloud provider, the first
resource the program registers) and says so on a pipe. A fast machine cannot finish first, and a
loaded one cannot still be starting.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from meshstack.core.stack_file import PROJECT_ROOT
from tests.support.cli_project import init

# Runs `python -m meshstack.cli preview` as a user would (argv from the command line, so the CLI installs
# its own SIGINT handler), with one hook that writes a byte to the inherited pipe and then waits.
LAUNCHER = """
import importlib.abc, os, runpy, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as from a terminal, whatever the test runner ignores
phase, ready = sys.argv.pop(1), int(sys.argv.pop(1))

def reached():
    os.write(ready, b"!")
    time.sleep(120)  # the signal ends this sleep and the process

if phase == "import":
    class Hold(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "pulumi_aws":
                sys.meta_path.remove(self)
                reached()
            return None
    sys.meta_path.insert(0, Hold())
else:
    import meshstack.preview.mocks as mocks
    registered = mocks.CloudMocks.new_resource
    def new_resource(self, args):
        reached()
        return registered(self, args)
    mocks.CloudMocks.new_resource = new_resource

sys.argv[0] = "meshstack"
runpy.run_module("meshstack.cli", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["import", "program"])
def test_ctrl_c_during_preview_prints_one_line_and_exits_130(tmp_path: Path, phase: str) -> None:
    project = init(tmp_path / "infra")
    env = {"PYTHONPATH": str(PROJECT_ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    read_end, write_end = os.pipe()
    running = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, phase, str(write_end), "preview", "-s", "dev"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        pass_fds=(write_end,),
    )
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 300)
        assert ready and os.read(read_end, 1) == b"!", f"the preview never reached the {phase} phase"
    finally:
        os.close(read_end)
    running.send_signal(signal.SIGINT)
    out, err = running.communicate(timeout=60)
    assert running.returncode == 130, err
    assert err == "meshstack: interrupted\n"
    assert out == ""
