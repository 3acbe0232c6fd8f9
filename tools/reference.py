"""Write the README's spec reference and library reference from the fields' own declarations.

    python tools/reference.py          # rewrite the README's generated sections
    python tools/reference.py --check  # exit 1, saying which section, if they differ from the declarations

Each section sits between `<!-- reference:NAME -->` and `<!-- /reference:NAME -->`; the text between is
this module's output and nothing else (tests/test_field_docs.py holds the README to it).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: meshstack is this checkout's
    sys.path.insert(0, str(ROOT))

from meshstack.core import clouds  # noqa: E402
from meshstack.core.catalog import known_clouds, load_catalog  # noqa: E402
from meshstack.core.field_docs import MODEL_DEFAULTS, REQUIRED, FieldDoc, args_fields, spec_fields, spec_models  # noqa: E402
from meshstack.core.spec import StackSpec  # noqa: E402
from meshstack.core.stack_file import DERIVED  # noqa: E402

README = ROOT / "README.md"
# Source folders and the package each is installed as; meshstack/'s symlinks to them are skipped.
SOURCES = {"meshstack": "meshstack", "components": "meshstack.components", "workloads": "meshstack.workloads"}
ARGS_CLASS = re.compile(r"^class (\w+Args)\b", re.M)


def args_classes() -> list[type]:
    """Every `*Args` dataclass in the source tree, by module path: a new one is in the reference at once."""
    found = []
    for folder, package in SOURCES.items():
        for here, dirs, files in os.walk(ROOT / folder):
            dirs[:] = sorted(d for d in dirs if not (Path(here) / d).is_symlink() and d != "__pycache__")
            for name in sorted(files):
                path = Path(here) / name
                if not name.endswith(".py") or not ARGS_CLASS.search(path.read_text()):
                    continue
                parts = path.relative_to(ROOT / folder).with_suffix("").parts
                module = importlib.import_module(".".join((package, *parts)))
                for cls_name in ARGS_CLASS.findall(path.read_text()):
                    cls = getattr(module, cls_name)
                    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
                        found.append(cls)
    return found


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{_cell(text)}`"


def _summary(cls: type) -> str:
    """A class docstring's first paragraph, on one line."""
    doc = (cls.__doc__ or "").strip()
    return " ".join(doc.split("\n\n")[0].split()) if doc and not doc.startswith(f"{cls.__name__}(") else ""


def _table(first: str, rows: list[FieldDoc], key: Callable[[FieldDoc], str]) -> list[str]:
    lines = [f"| {first} | type | default | meaning |", "| --- | --- | --- | --- |"]
    for row in rows:
        default = row.default if row.default in (REQUIRED, MODEL_DEFAULTS) else _code(row.default)
        lines.append(f"| {key(row)} | {_code(row.type)} | {default} | {_cell(row.description)} |")
    return lines


def _stack_key(row: FieldDoc) -> str:
    if row.name not in DERIVED:
        return _code(f"meshstack:{row.name}")
    # The stack's settings are the fields of every cloud's settings model.
    every = {f for c in clouds.registered().values() for f in c.settings.model_fields}
    names = every if row.name == "settings" else {row.name}
    keys = sorted(
        {key for c in known_clouds() for f, key in load_catalog(cloud=c).facts.config_keys.items() if f in names}
    )
    return f"{row.name} (" + (", ".join(_code(k) for k in keys) if keys else "no key") + ")"


def _setting_key(cloud: str) -> Callable[[FieldDoc], str]:
    keys = load_catalog(cloud=cloud).facts.config_keys
    return lambda row: f"{row.name} (" + (_code(keys[row.name]) if row.name in keys else "no key") + ")"


def spec_reference() -> str:
    lines: list[str] = []
    for model in spec_models(StackSpec):
        top = model is StackSpec
        lines += ["", f"#### `{model.__name__}`", ""]
        if _summary(model):
            lines += [_summary(model), ""]
        key = _stack_key if top else (lambda row: _code(row.name))
        lines += _table("key" if top else "field", spec_fields(model), key)
    for cloud in clouds.registered().values():
        if cloud.settings.model_fields:
            lines += [
                "",
                f"#### `{cloud.settings.__name__}`",
                "",
                f"`settings` on {cloud.title}: {_summary(cloud.settings)}",
            ]
            lines += ["", *_table("key", spec_fields(cloud.settings), _setting_key(cloud.name))]
    return "\n".join(lines[1:])


def library_reference() -> str:
    lines: list[str] = []
    for cls in args_classes():
        lines += ["", f"#### `{cls.__module__}.{cls.__name__}`", ""]
        if _summary(cls):
            lines += [_summary(cls), ""]
        lines += _table("field", args_fields(cls), lambda row: _code(row.name))
    return "\n".join(lines[1:])


SECTIONS: dict[str, Callable[[], str]] = {"spec": spec_reference, "library": library_reference}


def _markers(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- reference:{name} -->\n)(.*?)(<!-- /reference:{name} -->)", re.S)


def updated(readme: str) -> str:
    """The README with each generated section rewritten from the declarations."""
    for name, render in SECTIONS.items():
        match = _markers(name).search(readme)
        if match is None:
            raise SystemExit(f"README.md has no <!-- reference:{name} --> ... <!-- /reference:{name} --> section")
        readme = readme[: match.start(2)] + render() + "\n" + readme[match.end(2) :]
    return readme


def stale_sections(readme: str) -> list[str]:
    """The generated sections whose text is not what the declarations give now."""
    fresh = updated(readme)
    return [name for name in SECTIONS if _markers(name).findall(readme) != _markers(name).findall(fresh)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 where the README is stale")
    readme = README.read_text()
    if parser.parse_args().check:
        stale = stale_sections(readme)
        if stale:
            raise SystemExit(f"README.md's {', '.join(stale)} reference is stale: run python tools/reference.py")
        return
    README.write_text(updated(readme))


if __name__ == "__main__":
    main()
