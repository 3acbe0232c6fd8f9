"""Finding the JAX program processes a test left behind, so every test that starts one can prove it ended."""

from __future__ import annotations

from pathlib import Path


def stray_processes(marker: Path) -> list[str]:
    """JAX program processes still running whose job config points under `marker` (this test's directory)."""
    left = []
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environment = (proc / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "meshstack.workloads.jax." in command and str(marker) in environment:
            left.append(f"{proc.name} {command}")
    return left
