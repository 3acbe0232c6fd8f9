"""Runs a stack's real Pulumi program under the SDK's mock runtime and records what it declares.

The recording monitor sees each RegisterResource request exactly as the engine
would: URN, type, parent, dependencies and inputs. Each run gets a fresh context,
so a preview and its baseline can run one after the other in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import runpy
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pulumi
from pulumi import _types as pulumi_types
from pulumi.runtime import known_types, rpc
from pulumi.runtime import resource as runtime_resource
from pulumi.runtime.config import set_all_config
from pulumi.runtime.mocks import MockMonitor, MockResourceArgs
from pulumi.runtime.proto import resource_pb2, source_pb2
from pulumi.runtime.settings import SETTINGS
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
    # The resource options the engine reads to plan an update (what a change replaces, in what order).
    replace_on_changes: list[str] = field(default_factory=list)
    delete_before_replace: bool = False
    ignore_changes: list[str] = field(default_factory=list)

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
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return plain(value.get("value"))  # a secret is its value, as the engine shows it to policies
        return {k: plain(v) for k, v in value.items() if k != rpc._special_sig_key}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, pulumi.Resource):
        return f"<resource {type(value).__name__}>"
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class RecordingMonitor(MockMonitor):
    """The SDK's mock monitor, recording each registration as it answers it.

    RegisterResource is the SDK's own (pulumi/runtime/mocks.py, at the pinned version) with the
    record added, so that a request's inputs are deserialized once, not once for the mocks and
    again for the record.
    """

    def __init__(self, mocks: CloudMocks) -> None:
        super().__init__(mocks)
        self.records: list[Resource] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        inputs = rpc.deserialize_properties(request.object)
        args = MockResourceArgs(
            typ=request.type,
            name=request.name,
            inputs=inputs,
            provider=request.provider,
            resource_id=request.importId,
            custom=request.custom or False,
        )
        resource_id, state = self.mocks.new_resource(args)
        answer = _sync_await(rpc.serialize_properties(state, {}))
        self.resources[urn] = MockMonitor.ResourceRegistration(urn, cast(str, resource_id), state)
        self.records.append(
            Resource(
                urn=urn,
                type=request.type,
                name=request.name,
                parent=request.parent,
                custom=request.custom,
                provider=request.provider,
                dependencies=sorted(set(request.dependencies)),
                inputs=plain(inputs),
                outputs=plain(state),
                replace_on_changes=list(request.replaceOnChanges),
                delete_before_replace=bool(request.deleteBeforeReplace),
                ignore_changes=list(request.ignoreChanges),
            )
        )
        return resource_pb2.RegisterResourceResponse(urn=urn, id=cast(str, resource_id), object=answer)


class PendingOutputs:
    """The SDK's queue of unresolved outputs (SETTINGS.outputs, a deque) with O(1) removal.

    Every Output appends its future and removes it when it resolves; on a deque each removal scans
    the queue, so a program's run grows with the square of its outputs (a 64-cluster stack has tens
    of thousands). Insertion order is kept for the SDK's wait loop, which pops from the left.
    """

    def __init__(self) -> None:
        self._futures: dict[int, Any] = {}

    def append(self, future: Any) -> None:
        self._futures[id(future)] = future

    def remove(self, future: Any) -> None:
        if self._futures.pop(id(future), None) is None:
            raise ValueError("not pending")

    def popleft(self) -> Any:
        if not self._futures:
            raise IndexError("no pending outputs")
        key = next(iter(self._futures))
        return self._futures.pop(key)

    def clear(self) -> None:
        self._futures.clear()

    def __len__(self) -> int:
        return len(self._futures)


def _hashable_cache(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`fn` memoised on its one argument where that argument can be hashed (type hints mostly can)."""
    cached = functools.cache(fn)

    def call(arg: Any) -> Any:
        try:
            return cached(arg)
        except TypeError:
            return fn(arg)

    return call


def contains_unknowns(val: Any) -> bool:
    """pulumi.runtime.rpc.contains_unknowns, with the values already seen kept in a set of ids.

    The SDK keeps them in a list and scans it for every value it visits, so each check is quadratic
    in the size of the value, and it runs for every output of every resource.
    """
    seen: set[int] = set()
    pending = [val]
    while pending:
        current = pending.pop()
        if known_types.is_unknown(current):
            return True
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, dict):
            # dict.values, not current.values: an SDK output type is a dict whose own `values`
            # property (a GKE reservation affinity's) would shadow it.
            pending.extend(dict.values(current))
        elif isinstance(current, list):
            pending.extend(current)
    return False


# Pure functions of a class or a type hint that the SDK's registration path recomputes for every
# resource and every property; memoised while a mock run lasts.
MEMOISED = ("_types_from_py_properties", "unwrap_type")


@contextlib.contextmanager
def _lean_registration() -> Iterator[None]:
    """Costs of the SDK's registration path that a mock run does not need, removed while it runs.

    The SDK resolves each input type's property hints and unwraps each property's type hint again
    for every resource (memoised here: both are pure functions of a class or a hint); it lists a
    class's Pulumi properties by walking its MRO each time (kept as a tuple per class); it looks for
    unknowns in a value with a quadratic scan (`contains_unknowns`, above); and it walks the Python
    stack to attach a source position to each registration, which only the engine's diagnostics read
    and the mocks never do.
    """
    saved = {name: getattr(pulumi_types, name) for name in (*MEMOISED, "_py_properties")}
    stack_trace, unknowns = runtime_resource._get_stack_trace, rpc.contains_unknowns
    rpc.contains_unknowns = contains_unknowns
    for name in MEMOISED:
        setattr(pulumi_types, name, _hashable_cache(saved[name]))
    properties = functools.cache(lambda cls: tuple(saved["_py_properties"](cls)))
    setattr(pulumi_types, "_py_properties", properties)  # noqa: B010 - a tuple where the SDK yields
    runtime_resource._get_stack_trace = source_pb2.StackTrace
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(pulumi_types, name, fn)
        runtime_resource._get_stack_trace = stack_trace
        rpc.contains_unknowns = unknowns


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
        SETTINGS.outputs = PendingOutputs()
        set_all_config(runtime_config_values(config))
        with _lean_registration():
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
