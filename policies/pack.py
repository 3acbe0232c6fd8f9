"""Turns meshstack's rules into pulumi-policy policies: the one pack both the engine and the preview run."""

from __future__ import annotations

from collections.abc import Sequence
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

from meshstack.core.resources import ResourceView
from policies.rule import ResourceCheck, Rule, StackCheck
from policies.rules import ALL_RULES

PACK_NAME = "meshstack"
PACK_VERSION = "0.1.0"


def _report(rule: Rule, report: ReportViolation, message: str, urn: str | None = None) -> None:
    """`[MS-K8S-001] message` then the remediation: the id reaches every output, the real engine's included."""
    report(f"[{rule.id}] {message}\nRemediation: {rule.remediation}", urn)


def _resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if not rule.applies_to(args.resource_type):
            return
        view = ResourceView(args.urn, args.resource_type, args.name, "", args.props)
        check = cast(ResourceCheck, rule.check)
        for message in check(view, rule.settings(args.get_config())):
            _report(rule, report, str(message))

    return ResourceValidationPolicy(
        name=rule.name, description=_description(rule), validate=validate, **_metadata(rule)
    )


def _description(rule: Rule) -> str:
    return f"{rule.id}: {rule.description}"


def _stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        views = [
            ResourceView(r.urn, r.resource_type, r.name, r.parent.urn if r.parent else "", r.props)
            for r in args.resources
        ]
        check = cast(StackCheck, rule.check)
        for finding in check(views, rule.settings(args.get_config())):
            _report(rule, report, finding.message, finding.urn or None)

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
