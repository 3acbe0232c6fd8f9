"""Each extension has one place to go, as the README's "Extension points" table says: computed from the
source, the modules that name an existing cloud's vendor, add-on, engine or rule are the ones the table
lists, so a new one still touches only those (a cloud's own test is tests/core/test_clouds.py)."""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterable

import pytest
import yaml

from meshstack.core import clouds
from meshstack.core.stack_file import PROJECT_ROOT
from meshstack.core.vendors import VENDORS
from meshstack.policies.rules import ALL_RULES

PACKAGES = ("meshstack", "components", "workloads", "policies", "stacks")
README = (PROJECT_ROOT / "README.md").read_text()


@functools.cache
def constants() -> dict[str, frozenset[str]]:
    """Every module's string constants, by its path in the repository."""
    out = {}
    for package in PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text())
            found = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
            out[str(path.relative_to(PROJECT_ROOT))] = frozenset(found)
    return out


def naming(words: Iterable[str]) -> set[str]:
    """The modules with a string constant that is one of `words` (a name, not a word inside a sentence)."""
    wanted = set(words)
    return {path for path, found in constants().items() if found & wanted}


def row(extension: str) -> list[str]:
    """The cells of the README's row for `extension`: to add, goes in, files, kept true by."""
    [line] = [line for line in README.splitlines() if line.startswith(f"| {extension} |")]
    return [cell.strip() for cell in line.strip("|").split(" | ")]


def modules(cell: str) -> set[str]:
    """The modules a cell names (its own-module templates, `<engine>`, left out)."""
    return {p for p in re.findall(r"`([\w/<>.]+\.py)`", cell) if "<" not in p}


def test_an_accelerator_vendor_is_named_in_its_entry_alone() -> None:
    vendors = set(VENDORS) - {"none"}  # the CPU entry's key is an ordinary word
    _, goes_in, files, _ = row("an accelerator vendor")
    assert naming(vendors) == modules(goes_in) == {"meshstack/core/vendors.py"}
    assert files.startswith("1 of code")


def test_a_cluster_add_on_is_named_where_the_table_says() -> None:
    charts = set(yaml.safe_load((PROJECT_ROOT / "components" / "k8s" / "charts.yaml").read_text()))
    of_vendors = {c for v in VENDORS.values() for c in (v.device_plugin, v.telemetry) if c}
    autoscalers = {a for cloud in clouds.registered().values() for a in cloud.autoscalers}
    add_ons = charts - of_vendors - autoscalers
    assert {"jobset", "kueue", "keda"} <= add_ons
    _, goes_in, files, kept_by = row("a cluster add-on")
    assert modules(goes_in) == {"components/k8s/addons.py"} and files.startswith("1 of code")
    assert naming(add_ons) == modules(goes_in) | modules(kept_by)


def test_an_inference_engine_touches_the_modules_the_table_counts() -> None:
    _, goes_in, files, _ = row("an inference engine")
    assert naming({"vllm"}) == modules(goes_in)
    # Those, and the engine's own settings module.
    assert files == f"{len(modules(goes_in))} or {len(modules(goes_in)) + 1} of code"


def test_a_rules_id_is_named_in_its_own_module_alone() -> None:
    for rule in ALL_RULES:
        [module] = naming({rule.id})
        assert module.startswith("policies/rules/"), (rule.id, module)
    _, goes_in, files, _ = row("a policy rule")
    assert modules(goes_in) == {"policies/rules/__init__.py"} and files.startswith("1 of code")


def test_the_naming_check_sees_a_vendor_named_outside_its_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    spread = dict(constants())
    spread["components/k8s/addons.py"] = spread["components/k8s/addons.py"] | {"nvidia"}
    monkeypatch.setattr(f"{__name__}.constants", lambda: spread)
    assert "components/k8s/addons.py" in naming({"nvidia"})
