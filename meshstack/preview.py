"""The offline preview: validate a stack's spec, then run its program under mocks and record the plan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meshstack.config import Project, find_project, read_stack_config, spec_from_config
from meshstack.engine import Resource, run_project
from meshstack.spec import StackSpec


@dataclass
class Preview:
    stack: str
    spec: StackSpec
    resources: list[Resource]

    @property
    def custom_resources(self) -> list[Resource]:
        return [r for r in self.resources if r.custom]

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "resources": [r.to_json() for r in self.resources]}


def preview_stack(stack: str, project: Project | None = None) -> Preview:
    """Nothing is declared unless the spec validates; a bad spec raises SpecError first."""
    project = project or find_project()
    config = read_stack_config(project, stack)
    spec = spec_from_config(stack, config, project.stack_file(stack).name)
    resources = run_project(project, stack, config, spec.region)
    return Preview(stack=stack, spec=spec, resources=sorted(resources, key=lambda r: r.urn))
