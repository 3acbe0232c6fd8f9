"""Every spec field and component argument says what it means where it is declared, and the README's spec
and library references are what tools/reference.py writes from those declarations now."""

from __future__ import annotations

import dataclasses

from meshstack.components.gcp import gke
from meshstack.components.governance import StackGovernanceArgs
from meshstack.core import clouds, vocabulary
from meshstack.core.field_docs import args_fields, spec_fields, spec_models
from meshstack.core.nodes import NodePoolArgs
from meshstack.core.schema import stack_schema
from meshstack.core.spec import StackSpec
from meshstack.core.stack_file import PROJECT_ROOT
from meshstack.workloads.k8s.training_job import TrainingJobArgs
from tools import reference


def test_every_spec_field_has_a_description() -> None:
    models = [*spec_models(StackSpec), *(c.settings for c in clouds.registered().values())]
    missing = [f"{m.__name__}.{f.name}" for m in models for f in spec_fields(m) if not f.description]
    assert not missing, f"give these a Field(description=...) where they are declared: {missing}"


def test_every_component_argument_has_a_description() -> None:
    classes = reference.args_classes()
    assert {NodePoolArgs, gke.GkeClusterArgs, StackGovernanceArgs, TrainingJobArgs} <= set(classes)
    missing = [f"{c.__module__}.{c.__name__}.{f.name}" for c in classes for f in args_fields(c) if not f.description]
    assert not missing, f"give these an attribute docstring (a string on the line after the field): {missing}"


def test_the_reader_takes_a_docstring_from_under_its_own_field_only() -> None:
    @dataclasses.dataclass(frozen=True)
    class Base:
        kept: int
        """Said here."""

    @dataclasses.dataclass(frozen=True)
    class ProbeArgs(Base):
        bare: str = "x"
        listed: tuple[str, ...] = dataclasses.field(default_factory=tuple)
        """Only this one."""

    docs = {f.name: (f.default, f.description) for f in args_fields(ProbeArgs)}
    assert docs == {"kept": ("required", "Said here."), "bare": ("'x'", ""), "listed": ("()", "Only this one.")}


def test_the_json_schema_carries_the_descriptions() -> None:
    """`meshstack schema` gives an editor the same text as the README's tables."""
    defs = stack_schema()["properties"]["config"]["properties"]
    assert defs["meshstack:budget"]["description"] == StackSpec.model_fields["budget"].description
    pool = StackSpec.model_json_schema()["$defs"]["NodePool"]["properties"]
    assert all(prop.get("description") for prop in pool.values())


def test_the_readme_references_are_what_the_declarations_say() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    stale = reference.stale_sections(readme)
    assert not stale, f"README.md's {stale} reference is stale: run python tools/reference.py"


def test_a_changed_description_makes_the_readme_stale() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    described = StackSpec.model_fields["budget"].description or ""
    assert described in readme
    assert reference.stale_sections(readme.replace(described, "Something else.", 1)) == ["spec"]


def test_every_taint_effect_has_its_api_spelling() -> None:
    assert vocabulary.TAINT_EFFECT_ENUMS == {
        "NoSchedule": "NO_SCHEDULE",
        "NoExecute": "NO_EXECUTE",
        "PreferNoSchedule": "PREFER_NO_SCHEDULE",
    }
