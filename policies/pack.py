"""Turns meshstack's rules into pulumi-policy policies: the one pack both the engine and the preview run."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError

from meshstack.core.resources import ResourceView
from meshstack.policies.rule import Finding, ResourceCheck, Rule, StackCheck, Undecided
from meshstack.policies.rules import ALL_RULES
from meshstack.policies.values import resolve

PACK_NAME = "meshstack"
PACK_VERSION = "0.1.0"


def _report(rule: Rule, report: ReportViolation, message: str, urn: str | None = None) -> None:
    """`[MS-K8S-001] message` then the remediation: the id reaches every output, the real engine's included."""
    report(f"[{rule.id}] {message}\nRemediation: {rule.remediation}", urn)


def undecided_error(notes: Sequence[Undecided]) -> UnknownValueError:
    """What pulumi-policy reports as the rule's one advisory "can't run policy ... during preview: <message>",
    here after every decided violation was reported at the rule's own level."""
    error = UnknownValueError(UNKNOWN_STRING_VALUE, [])
    shown = "; ".join(n.message for n in notes[:5]) + (f"; and {len(notes) - 5} more" if len(notes) > 5 else "")
    error.message = f"undecided until the values are known: {shown}".replace("\n", " ")
    return error


def _report_all(rule: Rule, report: ReportViolation, results: Iterable[str | Finding | Undecided]) -> None:
    """Violations at the rule's level as they come; what could not be decided, together at the end."""
    undecided: list[Undecided] = []
    for result in results:
        if isinstance(result, Undecided):
            undecided.append(result)
        elif isinstance(result, Finding):
            _report(rule, report, result.message, result.urn or None)
        else:
            _report(rule, report, str(result))
    if undecided:
        raise undecided_error(undecided)


def _resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if not rule.applies_to(args.resource_type):
            return
        view = ResourceView(args.urn, args.resource_type, args.name, "", resolve(args.props))
        check = cast(ResourceCheck, rule.check)
        _report_all(rule, report, check(view, rule.settings(args.get_config())))

    return ResourceValidationPolicy(
        name=rule.name, description=_description(rule), validate=validate, **_metadata(rule)
    )


def _description(rule: Rule) -> str:
    return f"{rule.id}: {rule.description}"


def _stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        views = [
            ResourceView(
                r.urn,
                r.resource_type,
                r.name,
                r.parent.urn if r.parent else "",
                resolve(r.props),
                tuple(d.urn for d in r.dependencies),
            )
            for r in args.resources
        ]
        check = cast(StackCheck, rule.check)
        _report_all(rule, report, check(views, rule.settings(args.get_config())))

    return StackValidationPolicy(name=rule.name, description=_description(rule), validate=validate, **_metadata(rule))


def _metadata(rule: Rule) -> dict[str, Any]:
    return {
        "enforcement_level": EnforcementLevel(rule.enforcement),
        "config_schema": PolicyConfigSchema(properties=rule.config) if rule.config else None,
        "severity": Severity(rule.severity),
        "remediation_steps": rule.remediation,
    }


def policies(rules: Sequence[Rule] = ALL_RULES) -> list[Policy]:
    return [_stack_policy(r) if r.kind == "stack" else _resource_policy(r) for r in rules]


RULES_BY_NAME = {rule.name: rule for rule in ALL_RULES}
RULES_BY_ID = {rule.id: rule for rule in ALL_RULES}
