"""Evaluates the policy pack on a recorded preview the way the Pulumi engine does.

The pack's own analyzer servicer (the object `PolicyPack` serves over gRPC) is
driven in process through the analyzer protocol: Configure with the stack's
policy config, Analyze for each resource's inputs, AnalyzeStack with every
resource's outputs, parents and dependencies. The rules run exactly as they do
under `pulumi preview --policy-pack policies`; there is no second copy of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2 as proto
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer

from meshstack.core.errors import SpecError
from meshstack.core.input_files import load_json_file
from meshstack.core.stack_file import Project
from meshstack.policies.pack import PACK_NAME, PACK_VERSION, RULES_BY_NAME, policies
from meshstack.policies.rule import Rule
from meshstack.preview.recorder import Resource

LEVELS = {
    proto.ADVISORY: "advisory",
    proto.MANDATORY: "mandatory",
    proto.DISABLED: "disabled",
    proto.REMEDIATE: "mandatory",
}
SEVERITIES = {
    proto.POLICY_SEVERITY_LOW: "low",
    proto.POLICY_SEVERITY_MEDIUM: "medium",
    proto.POLICY_SEVERITY_HIGH: "high",
    proto.POLICY_SEVERITY_CRITICAL: "critical",
}
LEVEL_VALUES = {"advisory": proto.ADVISORY, "mandatory": proto.MANDATORY, "disabled": proto.DISABLED}


UNDECIDED_PREFIX = "can't run policy"


@dataclass(frozen=True)
class Violation:
    """A diagnostic of the pack. `undecided` marks what pulumi-policy reports as "can't run policy ... during
    preview": values the rule needed were unknown, so it is no violation and no pass either."""

    rule_id: str
    policy: str
    level: str
    severity: str
    urn: str
    message: str
    undecided: bool = False

    @property
    def remediation(self) -> str:
        return RULES_BY_NAME[self.policy].remediation if self.policy in RULES_BY_NAME else ""

    def to_json(self) -> dict[str, str | bool]:
        return {
            "id": self.rule_id,
            "policy": self.policy,
            "level": self.level,
            "severity": self.severity,
            "urn": self.urn,
            "message": self.message,
            "remediation": self.remediation,
            "undecided": self.undecided,
        }


def policy_config_path(project: Project, stack: str) -> Path:
    """Where a stack's policy config lives: the file to hand `--policy-pack-config` as well."""
    return project.root / "policies" / "config" / f"{stack}.json"


def load_policy_config(path: Path) -> dict[str, Any]:
    """A Pulumi policy-pack config file, checked as the engine checks it: known policies, valid values."""
    if not path.exists():
        return {}
    config = load_json_file(path)
    if not isinstance(config, dict):
        raise SpecError([("", f"{path.name} must hold an object of policy names")])
    problems = []
    for name, value in config.items():
        if name == "all":
            if value not in LEVEL_VALUES:
                problems.append((name, f"'{value}' is not one of {', '.join(LEVEL_VALUES)}"))
            continue
        rule = RULES_BY_NAME.get(name)
        if rule is None:
            problems.append((name, f"no such policy in the pack (known: {', '.join(sorted(RULES_BY_NAME))})"))
            continue
        if isinstance(value, str):
            value = {"enforcementLevel": value}
        if not isinstance(value, dict):
            problems.append((name, "must be an enforcement level or an object"))
            continue
        level = value.get("enforcementLevel")
        if level is not None and level not in LEVEL_VALUES:
            problems.append((f"{name}.enforcementLevel", f"'{level}' is not one of {', '.join(LEVEL_VALUES)}"))
        properties = {k: v for k, v in value.items() if k != "enforcementLevel"}
        if not properties:
            continue
        import jsonschema  # only a config that sets properties needs it, and it costs the preview's start-up

        schema = {"type": "object", "properties": rule.config, "additionalProperties": False}
        for error in jsonschema.Draft7Validator(schema).iter_errors(properties):
            where = ".".join(str(p) for p in error.absolute_path)
            problems.append((f"{name}.{where}" if where else name, error.message))
    if problems:
        raise SpecError(problems, path.name)
    return config


def _struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(json.loads(json.dumps(value, default=str)), struct_pb2.Struct())


def _configure_request(config: Mapping[str, Any]) -> proto.ConfigureAnalyzerRequest:
    """The per-policy config the engine sends: 'all' sets every level, a policy's own entry wins."""
    request = proto.ConfigureAnalyzerRequest()
    everyone = config.get("all")
    for name, rule in RULES_BY_NAME.items():
        entry = config.get(name, {})
        entry = {"enforcementLevel": entry} if isinstance(entry, str) else dict(entry)
        level = entry.pop("enforcementLevel", None) or everyone or rule.enforcement
        request.policyConfig[name].enforcementLevel = LEVEL_VALUES[level]
        request.policyConfig[name].properties.CopyFrom(_struct(entry))
    return request


def _violation(d: proto.AnalyzeDiagnostic) -> Violation:
    """The SDK sends the policy's description, a newline, then what `report` was given: `[ID] message`
    and the remediation. The id is the policy's own; the message is the rest."""
    rule = RULES_BY_NAME.get(d.policyName)
    rule_id = rule.id if rule else ""
    if d.message.startswith(UNDECIDED_PREFIX):
        return Violation(
            rule_id=rule_id,
            policy=d.policyName,
            level=LEVELS.get(d.enforcementLevel, "advisory"),
            severity=SEVERITIES.get(d.severity, ""),
            urn=d.urn,
            message=d.message.split("during preview: ", 1)[-1],
            undecided=True,
        )
    reported = d.message.split("\n", 1)[1] if "\n" in d.message else d.message
    return Violation(
        rule_id=rule_id,
        policy=d.policyName,
        level=LEVELS.get(d.enforcementLevel, "advisory"),
        severity=SEVERITIES.get(d.severity, ""),
        urn=d.urn,
        message=reported.split("\nRemediation:", 1)[0].removeprefix(f"[{rule_id}] "),
    )


def _violations(response: proto.AnalyzeResponse) -> list[Violation]:
    return [_violation(d) for d in response.diagnostics]


def _servicer(rules: Sequence[Rule], configure: proto.ConfigureAnalyzerRequest) -> _PolicyAnalyzerServicer:
    servicer = _PolicyAnalyzerServicer(PACK_NAME, PACK_VERSION, policies(rules), EnforcementLevel.ADVISORY)
    servicer.Configure(configure, None)
    return servicer


def evaluate(resources: Sequence[Resource], config: Mapping[str, Any] | None = None) -> list[Violation]:
    """Analyze for each resource, AnalyzeStack for the stack, through the SDK's own servicer.

    A resource is analysed by a servicer holding the pack's resource policies that name its type:
    every other resource policy returns at once for it (the pack checks the type first), while the
    SDK's servicer converts the resource's properties once per policy it holds, which was most of
    the pack's time. The verdicts are the same as the whole pack's.
    """
    configure = _configure_request(config or {})
    resource_rules = [rule for rule in RULES_BY_NAME.values() if rule.kind == "resource"]
    by_type: dict[str, _PolicyAnalyzerServicer | None] = {}
    violations: list[Violation] = []
    for r in resources:
        if not r.custom:
            continue
        if r.type not in by_type:
            applying = [rule for rule in resource_rules if rule.applies_to(r.type)]
            by_type[r.type] = _servicer(applying, configure) if applying else None
        servicer = by_type[r.type]
        if servicer is None:
            continue
        request = proto.AnalyzeRequest(type=r.type, properties=_struct(r.inputs), urn=r.urn, name=r.name)
        violations += [v if v.urn else replace(v, urn=r.urn) for v in _violations(servicer.Analyze(request, None))]
    stack = proto.AnalyzeStackRequest(
        resources=[
            proto.AnalyzerResource(
                type=r.type,
                properties=_struct(r.view().props),
                urn=r.urn,
                name=r.name,
                parent=r.parent,
                dependencies=r.dependencies,
            )
            for r in resources
        ]
    )
    stack_rules = [rule for rule in RULES_BY_NAME.values() if rule.kind == "stack"]
    violations += _violations(_servicer(stack_rules, configure).AnalyzeStack(stack, None))
    return sorted(violations, key=lambda v: (v.level != "mandatory", v.policy, v.urn))
