"""`up` and `destroy` through the Pulumi Automation API, which drives the real Pulumi CLI."""

from __future__ import annotations

import shutil
import sys

from meshstack.core.errors import MeshstackError, ToolMissingError
from meshstack.core.stack_file import Project


def run_pulumi(command: str, stack: str, project: Project, yes: bool) -> int:
    if shutil.which("pulumi") is None:
        raise ToolMissingError(
            "the Pulumi CLI is not installed (https://www.pulumi.com/docs/install/); "
            f"`meshstack preview --stack {stack}` shows the plan without it"
        )
    if not yes:
        raise MeshstackError(f"`meshstack {command}` changes real infrastructure: add --yes to go ahead")
    from pulumi import automation as auto

    try:
        workspace = auto.select_stack(stack_name=stack, work_dir=str(project.root))
        if command == "up":
            workspace.up(on_output=lambda line: print(line, end="" if line.endswith("\n") else "\n"))
        else:
            workspace.destroy(on_output=lambda line: print(line, end="" if line.endswith("\n") else "\n"))
    except auto.errors.CommandError as exc:
        print(str(exc), file=sys.stderr)
        raise MeshstackError(f"pulumi {command} failed for stack {stack} (its output is above)") from exc
    return 0
