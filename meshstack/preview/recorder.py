"""Runs a stack's real Pulumi program under the SDK's mock runtime and records what it declares.

The recording monitor sees each RegisterResource request exactly as the engine
would: URN, type, parent, dependencies and inputs. Each run gets a fresh context,
so a preview and its baseline can run one after the other in one process.
"""

from __future__ import annotations

import asyncio
import contextvars
import runpy
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime.config import set_all_config
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from meshstack.core.resources import ResourceView
from meshstack.core.spec import StackSpec
from meshstack.core.stack_file import Project, hand_validated, runtime_config_values
from meshstack.preview.mocks import CloudMocks


@dataclass
class Resource:
    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    provider: str
    dependencies: list[str]
    inputs: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)

    def view(self) -> ResourceView:
        """Custom resources as the engine reports them after a plan (outputs); components by their inputs."""
        return ResourceView(self.urn, self.type, self.name, self.parent, self.outputs if self.custom else self.inputs)

    def to_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "dependencies": self.dependencies,
            "inputs": self.inputs,
        }


def plain(value: Any) -> Any:
    """Inputs as JSON: resource references become their URNs, unknowns a marker."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k != rpc._special_sig_key}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, pulumi.Resource):
        return f"<resource {type(value).__name__}>"
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class RecordingMonitor(MockMonitor):
    def __init__(self, mocks: CloudMocks) -> None:
        super().__init__(mocks)
        self.records: list[Resource] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        inputs = rpc.deserialize_properties(request.object)
        registration = self.resources.get(response.urn)
        self.records.append(
            Resource(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent=request.parent,
                custom=request.custom,
                provider=request.provider,
                dependencies=sorted(set(request.dependencies)),
                inputs=plain(inputs),
                outputs=plain(registration.state) if registration is not None else {},
            )
        )
        return response


def _run(
    program: Callable[[], None],
    project: str,
    stack: str,
    config: dict[str, Any],
    region: str,
    spec: StackSpec | None,
) -> list[Resource]:
    if spec is not None:
        hand_validated(spec)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        monitor = RecordingMonitor(CloudMocks(region))
        pulumi.runtime.set_mocks(monitor.mocks, project=project, stack=stack, preview=False, monitor=monitor)
        set_all_config(runtime_config_values(config))
        _sync_await(run_pulumi_func(program))
        return monitor.records
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def run_program(
    program: Callable[[], None],
    project: str,
    stack: str,
    config: dict[str, Any],
    region: str,
    spec: StackSpec | None = None,
) -> list[Resource]:
    """Run `program` as stack `project/stack` with `config`, and return every resource it declared.

    `spec`, when given, is the spec already validated from `config`: the program receives it
    from `spec_from_runtime` instead of validating the same config again.
    """
    return contextvars.Context().run(_run, program, project, stack, config, region, spec)


def run_project(
    project: Project, stack: str, config: dict[str, Any], region: str, spec: StackSpec | None = None
) -> list[Resource]:
    """Run the project's own program file, exactly as `pulumi preview` would start it."""
    program_dir = str(Path(project.program).parent)

    def program() -> None:
        sys.path.insert(0, program_dir)
        try:
            runpy.run_path(str(project.program), run_name="__main__")
        finally:
            sys.path.remove(program_dir)

    return run_program(program, project.name, stack, config, region, spec)
