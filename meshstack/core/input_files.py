"""The one way meshstack reads a file a user wrote: stack files, Pulumi.yaml, catalog overrides and
policy configs. Before any schema sees the data, the file must be a reasonable size of UTF-8 text
without control characters, and parse to plain data: no duplicate keys (YAML and JSON would keep
the last silently), no non-finite numbers, no nesting or alias expansion beyond sane limits (a
YAML alias bomb expands to billions of nodes when walked). Every refusal is one line naming the
file and, where there is one, the line.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

from meshstack.core.errors import SpecError

MAX_BYTES = 4 * 2**20
MAX_DEPTH = 64
MAX_NODES = 200_000  # after expanding aliases
# C0 controls but tab and line ends, DEL, and the C1 controls but NEL: YAML refuses them all, and in
# a JSON file they can only be damage.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f]")
# Unicode's noncharacters (U+FDD0..U+FDEF and the last two code points of every plane): valid UTF-8,
# but "never for interchange"; YAML refuses U+FFFE and U+FFFF and the others are no better.
NONCHARACTER = re.compile(
    "[\ufdd0-\ufdef\ufffe\uffff"
    + "".join(f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(1, 17))
    + "]"
)


class InputFileError(SpecError):
    """A file that is not data meshstack will read; exit 2, nothing was done."""

    def __init__(self, path: Path, problem: str, line: int | None = None) -> None:
        where = f"line {line}: " if line is not None else ""
        super().__init__([("", f"{where}{problem}")], str(path))


def read_text(path: Path) -> str:
    """The file as text, or a refusal naming what is wrong with it."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise InputFileError(path, f"is {size:,} bytes; meshstack reads files up to {MAX_BYTES:,}")
        data = path.read_bytes()
    except IsADirectoryError:
        raise InputFileError(path, "is a directory, not a file") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot be read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputFileError(path, f"is not UTF-8 text (byte 0x{data[exc.start]:02x})", line) from None
    bad = CONTROL.search(text)
    if bad is not None:
        raise InputFileError(path, f"holds the control character U+{ord(bad.group()):04X}", _line(text, bad.start()))
    bad = NONCHARACTER.search(text)
    if bad is not None:
        raise InputFileError(path, f"holds the noncharacter U+{ord(bad.group()):04X}", _line(text, bad.start()))
    return text


def _line(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys and non-finite numbers where they are written."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        # Constructors that are generators (a set, an ordered map) otherwise finish after
        # construct_object has returned, where a refusal no longer knows its node.
        self.deep_construct = True

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):  # `!!set [a]`: let PyYAML say what it expected
            return super().construct_mapping(node, deep=deep)
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                hash(key)
            except TypeError:  # a list, a mapping or a set (`? !!set {a}`) as a key
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                ) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (first at line {seen[key]})", key_node.start_mark
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise yaml.constructor.ConstructorError(
                None, None, f"'{node.value}' is not a finite number", node.start_mark
            )
        return value

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """PyYAML picks a constructor by the scalar's shape or its tag and then trusts it: 2024-13-45
        reaches datetime, `!!timestamp x` a regex that did not match, `!!bool x` a missing key, a
        5,000-digit integer int()'s limit. Whatever a constructor raises is a refusal at that node."""
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError) as exc:
            value = node.value if isinstance(node, yaml.ScalarNode) else ""
            shown = value if len(value) <= 40 else f"{value[:40]}..."
            kind = node.tag.rsplit(":", 1)[-1]
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise yaml.constructor.ConstructorError(
                None, None, f"'{shown}' is not a valid {kind} ({reason})", node.start_mark
            ) from None


_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_yaml_float)


def _check_shape(path: Path, root: yaml.Node | None) -> None:
    """Depth and size as a consumer walking the data would meet them, aliases expanded."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise InputFileError(path, f"nests deeper than {MAX_DEPTH} levels", node.start_mark.line + 1)
        if id(node) in sizes:
            return sizes[id(node)]
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        if total > MAX_NODES:
            raise InputFileError(
                path, f"expands to more than {MAX_NODES:,} values (aliases included)", node.start_mark.line + 1
            )
        sizes[id(node)] = total
        return total

    if root is not None:
        size(root, 0)


def load_yaml_file(path: Path) -> Any:
    """A user's YAML file as plain data."""
    text = read_text(path)
    loader: _StrictLoader | None = None
    try:
        loader = _StrictLoader(text)  # its reader checks every character here, before any parsing
        root = loader.get_single_node()
        _check_shape(path, root)
        return None if root is None else loader.construct_document(root)
    except yaml.reader.ReaderError as exc:
        # read_text refuses what YAML's reader does; should their lists ever differ, still one line.
        raise InputFileError(path, f"not valid YAML: {exc.reason}", _line(text, exc.position)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(str(exc.problem or exc.context or "not valid YAML").split())
        raise InputFileError(path, f"not valid YAML: {problem}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise InputFileError(path, f"not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise InputFileError(path, f"nests deeper than {MAX_DEPTH} levels") from None
    finally:
        if loader is not None:
            loader.dispose()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key '{key}'")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"'{name}' is not a finite number")


def json_nesting(raw: bytes) -> int:
    """How deep JSON brackets nest, outside strings: checked before parsing, which recurses. The
    server's request bodies and the files meshstack reads are held to it alike."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def load_json_file(path: Path) -> Any:
    """A user's JSON file as plain data."""
    return parse_json(read_text(path), path)


def parse_json(text: str, path: Path) -> Any:
    """JSON text read from `path` (a local file, or a checkpoint's manifest in a bucket) as plain data."""
    if json_nesting(text.encode()) > MAX_DEPTH:
        raise InputFileError(path, f"nests deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InputFileError(path, f"not valid JSON: {exc.msg}", exc.lineno) from None
    except ValueError as exc:
        raise InputFileError(path, f"not valid JSON: {exc}") from None
