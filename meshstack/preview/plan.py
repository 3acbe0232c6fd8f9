"""The offline preview: validate a stack's spec, run its program under mocks, then price and police the plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshstack.core.catalog import load_catalog
from meshstack.core.errors import SpecError, UsageError
from meshstack.core.runs import TrainingRun, training_runs
from meshstack.core.spec import StackSpec
from meshstack.core.stack_file import Project, find_project, read_stack_config, spec_from_config
from meshstack.cost import CostChange, CostReport, diff, estimate, handed_over
from meshstack.preview.policy_levels import PolicySettings, policy_settings
from meshstack.preview.policy_runner import Violation, evaluate, load_policy_config, policy_config_path
from meshstack.preview.recorder import Resource, run_project


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
            "policy": {
                "violations": [v.to_json() for v in self.violations],
                "outside_stack": self.spec.outside_stack(),
                **self.policy.to_json(),
            },
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
                "running_hourly_usd": round(self.baseline.cost.running_hourly_usd, 4),
                "running_monthly_usd": round(self.baseline.cost.running_monthly_usd, 2),
                "delta_running_hourly_usd": round(
                    self.cost.running_hourly_usd - self.baseline.cost.running_hourly_usd, 4
                ),
                "delta_running_monthly_usd": round(
                    self.cost.running_monthly_usd - self.baseline.cost.running_monthly_usd, 2
                ),
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


@dataclass(frozen=True)
class Baseline:
    """What a preview's cost is compared with, checked before either preview runs."""

    stack: str
    project: Project
    config_file: Path | None = None
    absent: bool = False  # a baseline project without this stack: the stack is new, every resource added

    def run(self) -> Preview:
        if not self.absent:
            return preview_stack(self.stack, self.project, self.config_file)
        catalog = load_catalog()
        spec = StackSpec.model_construct(name=self.stack, region=catalog.prices.region)
        return Preview(f"{self.stack} (not in the baseline)", spec, [], estimate([], catalog), [])


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.startswith(".") or text.endswith((".yaml", ".yml", ".json"))


def resolve_baseline(stack: str, other: str, project: Project) -> Baseline:
    """OTHER is a stack file (the base branch's copy), a project folder (the base branch's checkout), or
    another stack of this project. Anything else is refused rather than compared with the stack itself."""
    path = Path(other)
    if path.is_file():
        return Baseline(stack, project, config_file=path)
    if path.is_dir():
        if not (path / "Pulumi.yaml").is_file():
            raise UsageError(
                f"--baseline {other}: no Pulumi.yaml in that folder; give the base branch's checkout of the "
                "project, a copy of the stack file, or another stack's name"
            )
        base = find_project(path)
        if base.root == project.root:
            raise UsageError(f"--baseline {other}: is this project itself; the stack would be compared with itself")
        return Baseline(stack, base, absent=not base.stack_file(stack).exists())
    if _looks_like_path(other):
        raise UsageError(f"--baseline {other}: no such file or folder")
    if other == stack:
        raise UsageError(f"--baseline {other}: is the stack itself; give another stack, a stack file or a project")
    if not project.stack_file(other).exists():
        known = ", ".join(project.stacks()) or "none"
        raise SpecError([("", f"--baseline {other}: no stack '{other}' in this project (stacks: {known})")])
    return Baseline(other, project)
