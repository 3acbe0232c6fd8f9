"""Errors a user can act on, and the one-line form the CLI prints."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

# The CLI's exit codes, one meaning each (the README lists them).
EXIT_OK = 0
EXIT_VIOLATIONS = 1  # `preview`: the plan breaks a mandatory policy
EXIT_INVALID = 2  # a stack file, catalog or policy config is not valid; nothing was declared
EXIT_FAILED = 4  # a step could not run: a tool is missing, a local run failed
EXIT_USAGE = 64  # the command line itself is wrong (sysexits.h EX_USAGE; argparse's own 2 is taken above)
EXIT_INTERNAL = 70  # a bug in meshstack (EX_SOFTWARE)
EXIT_INTERRUPTED = 130


class MeshstackError(Exception):
    """Anything the CLI reports as one line and a non-zero exit, never a traceback."""

    exit_code = EXIT_FAILED


class UsageError(MeshstackError):
    """The command line asks for something meshstack will not do: a bad value, a folder it does not own."""

    exit_code = EXIT_USAGE


class SpecError(MeshstackError):
    """A stack file that is not a valid spec; nothing has been declared."""

    exit_code = EXIT_INVALID

    def __init__(self, problems: list[tuple[str, str]], source: str = "") -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(f"{path}: {message}" if path else message for path, message in problems))


class ModelInputError(MeshstackError):
    """A model folder, checkpoint, tokenizer or training input that cannot be used; nothing was started."""

    exit_code = EXIT_INVALID


class ToolMissingError(MeshstackError):
    """A command needs a program (the Pulumi CLI, a browser) that is not installed."""


class ExtraMissingError(MeshstackError):
    """A command needs an optional part of meshstack (an extra: JAX for training and serving, the
    demo's charts) that this install left out, as a CI machine that only previews does."""


def join_path(parts: typing.Iterable[str | int]) -> str:
    """('clusters', 0, 'node_pools', 1, 'accelerator') -> 'clusters[0].node_pools[1].accelerator'."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("["):
            out += part
        elif part:
            out += f".{part}" if out else part
    return out


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None
        current = _unwrap(current.model_fields[part].annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """list[X] / X | None / Annotated[X, ...] -> X, so a path can walk to the model a field holds.

    A union of several models (a discriminated union) is returned as it is.
    """
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (list, typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) > 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _without_tags(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the tag pydantic puts in the path of a discriminated union ('workloads.0.training.mesh')."""
    out: list[Any] = []
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            out.append(part)
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            if part in current.model_fields:
                out.append(part)
                current = _unwrap(current.model_fields[part].annotation)
            else:
                out.append(part)
                current = None
        elif typing.get_origin(current) in (typing.Union, types.UnionType):
            members = {
                typing.get_args(m.model_fields["kind"].annotation)[0]: m
                for m in typing.get_args(current)
                if isinstance(m, type) and issubclass(m, BaseModel) and "kind" in m.model_fields
            }
            current = members.get(part)
            if current is None:
                out.append(part)
        else:
            out.append(part)
    return tuple(out)


def spec_problems(exc: ValidationError, model: type[BaseModel]) -> list[tuple[str, str]]:
    """Each pydantic error as (field path, message), with the allowed keys named for a typo."""
    problems = []
    for err in exc.errors():
        loc = _without_tags(model, tuple(err["loc"]))
        ctx = err.get("ctx") or {}
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            allowed = ", ".join(parent.model_fields) if parent else ""
            message = f"unknown key; allowed keys are {allowed}" if allowed else "unknown key"
        elif err["type"] == "missing":
            message = "is required"
        problems.append((join_path([*loc, ctx.get("field", "")]), message))
    return problems
