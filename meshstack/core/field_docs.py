"""Each field's description as it is declared: a spec model's `Field(description=...)`, a component args
dataclass's attribute docstring (the string literal on the line after the field).

The README's references are written from these and a test holds every field to having one, so a field's
meaning is said once, beside its type and its default, and never drifts into prose elsewhere.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import textwrap
import types
import typing
from collections.abc import Iterator
from functools import cache
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

REQUIRED = "required"
MODEL_DEFAULTS = "its defaults"
MAX_DEFAULT = 48  # a longer default is shown as its source expression, or not at all


@dataclasses.dataclass(frozen=True)
class FieldDoc:
    name: str
    type: str
    default: str
    description: str


def type_name(annotation: Any) -> str:
    """A type as a stack file's author reads it: `"spot" | "on-demand"` for a Literal, model names bare."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if annotation is type(None):
        return "None"
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_name(a) for a in args)}]"
    return getattr(annotation, "__name__", str(annotation))


def _shown(value: Any) -> str:
    if isinstance(value, BaseModel):
        return MODEL_DEFAULTS
    try:
        return json.dumps(value)
    except TypeError:
        return repr(value)


def spec_fields(model: type[BaseModel]) -> list[FieldDoc]:
    """A spec model's fields in declaration order; defaults as a stack file would write them."""
    out = []
    for name, info in model.model_fields.items():
        if info.is_required():
            default = REQUIRED
        elif info.default_factory is not None:
            default = _shown(info.default_factory())  # type: ignore[call-arg]
        else:
            default = _shown(info.default) if info.default is not PydanticUndefined else REQUIRED
        out.append(FieldDoc(name, type_name(info.annotation), default, info.description or ""))
    return out


def spec_models(root: type[BaseModel]) -> list[type[BaseModel]]:
    """Every model a root model's fields reach, the root first, each once, in the order first reached."""
    seen: dict[type[BaseModel], None] = {}

    def models_in(annotation: Any) -> Iterator[type[BaseModel]]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield annotation
        for arg in get_args(annotation):
            yield from models_in(arg)

    def visit(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen[model] = None
        for info in model.model_fields.values():
            for inner in models_in(info.annotation):
                visit(inner)

    visit(root)
    return list(seen)


@cache
def _declared(cls: type) -> dict[str, tuple[str, ast.expr | None, str]]:
    """{field: (annotation source, default expression, attribute docstring)} of the fields `cls` itself
    declares, read from its source: a docstring is a bare string statement right after its field."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = next(node for node in tree.body if isinstance(node, ast.ClassDef)).body
    out: dict[str, tuple[str, ast.expr | None, str]] = {}
    for node, after in zip(body, [*body[1:], None], strict=True):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            doc = ""
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                doc = inspect.cleandoc(str(after.value.value))
            out[node.target.id] = (ast.unparse(node.annotation), node.value, doc)
    return out


def _source_default(expr: ast.expr | None) -> str:
    """A default as its declaration writes it: `field(default_factory=dict)` is `dict()`."""
    if expr is None:
        return REQUIRED
    if isinstance(expr, ast.Call) and ast.unparse(expr.func) in ("field", "dataclasses.field"):
        for keyword in expr.keywords:
            if keyword.arg == "default":
                return ast.unparse(keyword.value)
            if keyword.arg == "default_factory":
                return f"{ast.unparse(keyword.value)}()"
        return REQUIRED
    return ast.unparse(expr)


def _runtime_default(item: dataclasses.Field[Any]) -> str | None:
    if item.default is not dataclasses.MISSING:
        value = item.default
    elif item.default_factory is not dataclasses.MISSING:
        value = item.default_factory()
    else:
        return None
    shown = repr(value)
    return shown if len(shown) <= MAX_DEFAULT else None


def args_fields(cls: type) -> list[FieldDoc]:
    """An args dataclass's fields, inherited ones first, each read where its class declares it."""
    owners = [c for c in reversed(cls.__mro__) if dataclasses.is_dataclass(c)]
    out = []
    for item in dataclasses.fields(cls):
        owner = next(c for c in reversed(owners) if item.name in _declared(c))
        annotation, expr, doc = _declared(owner)[item.name]
        default = _runtime_default(item) or _source_default(expr)
        out.append(FieldDoc(item.name, annotation, default, doc))
    return out
