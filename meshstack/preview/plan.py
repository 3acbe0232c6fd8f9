"""The offline preview: validate a stack's spec, run its program under mocks, then price and police the plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshstack.core.catalog import load_catalog
from meshstack.core.spec import StackSpec
from meshstack.core.stack_file import Project, find_project, read_stack_config, spec_from_config
from meshstack.cost import CostChange, CostReport, diff, estimate, handed_over
from meshstack.preview.policy_levels import PolicySettings, policy_settings
from meshstack.preview.policy_runner import Violation, evaluate, load_policy_config, policy_config_path
from meshstack.preview.recorder import Resource, run_project
from meshstack.preview.runs import TrainingRun, training_runs


@dataclass
class Preview:
    stack: str
    spec: StackSpec
    resources: list[Resource]
    cost: CostReport
    violations: list[Violation]
    runs: list[TrainingRun] = field(default_factory=list)
    policy: PolicySettings = field(default_factory=lambda: policy_settings({}, ""))
    baseline: Preview | None = None
    cost_changes: list[CostChange] = field(default_factory=list)

    @property
    def custom_resources(self) -> list[Resource]:
        return [r for r in self.resources if r.custom]

    @property
    def mandatory_violations(self) -> list[Violation]:
        return [v for v in self.violations if v.level == "mandatory" and not v.undecided]

    @property
    def undecided(self) -> list[Violation]:
        return [v for v in self.violations if v.undecided]

    @property
    def advisory_violations(self) -> list[Violation]:
        return [v for v in self.violations if v.level != "mandatory" and not v.undecided]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "stack": self.stack,
            "resources": [r.to_json() for r in self.resources],
            "policy": {"violations": [v.to_json() for v in self.violations], **self.policy.to_json()},
            "cost": self.cost.to_json(),
            "training_runs": [r.to_json() for r in self.runs],
        }
        if self.baseline is not None:
            data["cost"]["baseline"] = {
                "stack": self.baseline.stack,
                "hourly_usd": round(self.baseline.cost.hourly_usd, 4),
                "monthly_usd": round(self.baseline.cost.monthly_usd, 2),
                "delta_hourly_usd": round(self.cost.hourly_usd - self.baseline.cost.hourly_usd, 4),
                "delta_monthly_usd": round(self.cost.monthly_usd - self.baseline.cost.monthly_usd, 2),
                "changes": [c.to_json() for c in self.cost_changes],
            }
        return data


def preview_stack(stack: str, project: Project | None = None, config_file: Path | None = None) -> Preview:
    """Nothing is declared unless the spec validates; a bad spec raises SpecError first.

    `config_file` reads the stack's config from another copy of its stack file (the
    base branch's, say) while keeping the stack's name, so the two plans line up.
    """
    project = project or find_project()
    if config_file is None:
        config, source = read_stack_config(project, stack), project.stack_file(stack).name
    else:
        config, source = read_stack_config(project, stack, config_file), str(config_file)
    spec = spec_from_config(stack, config, source)
    config_path = policy_config_path(project, stack)
    policy_config = load_policy_config(config_path)
    source = config_path.relative_to(project.root).as_posix() if config_path.exists() else ""
    resources = sorted(run_project(project, stack, config, spec.region, spec), key=lambda r: r.urn)
    catalog = load_catalog(cloud=spec.cloud)
    cost = estimate((r.view() for r in resources), catalog)
    with handed_over(cost):
        violations = evaluate(resources, policy_config)
    runs = training_runs(spec, catalog)
    return Preview(
        stack=stack,
        spec=spec,
        resources=resources,
        cost=cost,
        violations=violations,
        runs=runs,
        policy=policy_settings(policy_config, source),
    )


def with_baseline(current: Preview, baseline: Preview) -> Preview:
    current.baseline = baseline
    current.cost_changes = diff(baseline.cost, baseline.stack, current.cost, current.stack)
    return current


def resolve_baseline(stack: str, other: str, project: Project) -> Preview:
    """OTHER is a stack file (the base branch's copy), a project directory, or a stack of this project."""
    path = Path(other)
    if path.is_file():
        return preview_stack(stack, project, config_file=path)
    if path.is_dir():
        return preview_stack(stack, find_project(path))
    return preview_stack(other, project)
