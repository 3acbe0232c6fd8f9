"""No rule ever crashes the analyzer: every rule, for each type it names, is fed generated property trees
through the pack as the engine calls it (Analyze for a resource rule, AnalyzeStack for a stack rule, on
pulumi-policy's own servicer), and must answer with violations, an "undecided", or nothing.

The trees are what a program may send that meshstack never does: lists where maps are expected, maps
where lists are, missing and null fields, the engine's unknown sentinels (a `pulumi preview` of a new
stack), huge and negative numbers, strings where numbers are, policy documents of every shape. Half of
them start from a real resource of the shipped stacks with one subtree replaced, so the rule gets past its
first checks.
"""

from __future__ import annotations

import fnmatch
import json
import re
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from pulumi.runtime.proto import analyzer_pb2 as proto
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer
from pulumi_policy.proxy import (
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
)

from meshstack.core.resources import ResourceView
from meshstack.core.stack_file import PROJECT_ROOT
from meshstack.policies.pack import PACK_NAME, PACK_VERSION, policies
from meshstack.policies.rule import Rule
from meshstack.policies.rules import ALL_RULES
from meshstack.preview.policy_runner import _configure_request, _struct
from tests.conftest import SHIPPED_STACKS, _preview
from tests.support.provider_types import provider_types

POLICY_SOURCES = sorted((PROJECT_ROOT / "policies").rglob("*.py"))
UNKNOWNS = [
    UNKNOWN_STRING_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_OBJECT_VALUE,
]


@cache
def keys() -> list[str]:
    """Every property name the rules mention (camelCase string literals in policies/), so generated maps
    reach the paths rules read."""
    found = {m for path in POLICY_SOURCES for m in re.findall(r'"([a-z][A-Za-z0-9]{1,40})"', path.read_text())}
    return sorted(found | {"name", "spec", "metadata", "template", "containers", "Statement", "Principal"})


@cache
def all_types() -> tuple[str, ...]:
    registered = set().union(*(provider_types(p) for p in ("pulumi_aws", "pulumi_gcp", "pulumi_kubernetes")))
    produced = {r.type for stack in SHIPPED_STACKS for r in _preview(stack).resources}
    return tuple(sorted(registered | produced))


def types_of(rule: Rule) -> list[str]:
    """The concrete types a rule names (its patterns expanded over the registered types); a pattern like
    `aws:*` is sampled, not enumerated."""
    out: list[str] = []
    for pattern in rule.resource_types:
        matching = [t for t in all_types() if fnmatch.fnmatchcase(t, pattern)]
        out += matching if len(matching) <= 40 else matching[:: max(1, len(matching) // 40)]
    return sorted(set(out)) or ["aws:s3/bucket:Bucket"]


@cache
def bases() -> dict[str, list[dict[str, Any]]]:
    """Real properties per type from the shipped stacks' previews."""
    out: dict[str, list[dict[str, Any]]] = {}
    for stack in SHIPPED_STACKS:
        for r in _preview(stack).resources:
            out.setdefault(r.type, []).append(r.outputs if r.custom else r.inputs)
    return out


SPECIAL_STRINGS = [
    "*",
    "*:*",
    "arn:aws:*",
    "0.0.0.0/0",
    "::/0",
    "10.0.0.0/8",
    "true",
    "false",
    "required",
    "optional",
    "disabled",
    "-1",
    "tcp",
    "all",
    "22",
    "80-8080",
    "x-y",
    "LoadBalancer",
    "NodePort",
    "allUsers",
    "READER:allUsers",
    "roles/owner",
    "INGRESS",
    "allow",
    "Allow",
    "PERSISTENT_2",
    "SYMMETRIC_DEFAULT",
    "IMMUTABLE",
    "ENHANCED",
    "public-read",
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "secrets",
    "GKE_METADATA",
    "arn:aws:iam::123456789012:role/x",
    "python:latest",
    "a@b",
    "",
    '{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}',
    '{"Statement": [{"Effect": "Allow", "Principal": "*", "NotAction": "x"}]}',
    '{"bindings": [{"role": "roles/owner", "members": ["allUsers"]}]}',
    '{"Statement": "nope"}',
    "[[[[",
    *UNKNOWNS,
]
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(SPECIAL_STRINGS),
    st.text(max_size=8),
)


def trees() -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(st.sampled_from(keys()), children, max_size=5),
        ),
        max_leaves=15,
    )


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    """The base with one subtree replaced by a generated one (or removed, or the whole of it replaced)."""
    if not isinstance(base, dict | list) or not base or draw(st.integers(0, 5)) == 0:
        return draw(trees())
    out = base.copy()
    key = draw(st.sampled_from(list(out) if isinstance(out, dict) else range(len(out))))
    if isinstance(out, dict) and draw(st.booleans()) and draw(st.booleans()):
        del out[key]
    else:
        out[key] = draw(mutated(out[key]))  # type: ignore[index]
    return out


@st.composite
def properties(draw: st.DrawFn, typ: str) -> dict[str, Any]:
    real = bases().get(typ)
    if real and draw(st.booleans()):
        tree = draw(mutated(draw(st.sampled_from(real))))
    else:
        tree = draw(st.dictionaries(st.sampled_from(keys()), trees(), max_size=8))
    return tree if isinstance(tree, dict) else {"value": tree}


SERVICERS: dict[str, _PolicyAnalyzerServicer] = {}


def servicer(rule: Rule) -> _PolicyAnalyzerServicer:
    """The SDK's servicer holding only this rule, configured as the engine configures it."""
    if rule.id not in SERVICERS:
        service = _PolicyAnalyzerServicer(PACK_NAME, PACK_VERSION, policies([rule]), EnforcementLevel.ADVISORY)
        service.Configure(_configure_request({}), None)
        SERVICERS[rule.id] = service
    return SERVICERS[rule.id]


def answered(rule: Rule, response: proto.AnalyzeResponse) -> None:
    for d in response.diagnostics:
        assert d.policyName == rule.name
        assert d.message


@pytest.mark.parametrize("rule", [r for r in ALL_RULES if r.kind == "resource"], ids=lambda r: r.id)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_resource_rules_answer_any_property_tree(rule: Rule, data: st.DataObject) -> None:
    typ = data.draw(st.sampled_from(types_of(rule)))
    props = data.draw(properties(typ))
    urn = f"urn:pulumi:fuzz::meshstack::{typ}::r"
    request = proto.AnalyzeRequest(type=typ, properties=_struct(props), urn=urn, name="r")
    answered(rule, servicer(rule).Analyze(request, None))


@pytest.mark.parametrize("rule", [r for r in ALL_RULES if r.kind == "stack"], ids=lambda r: r.id)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_stack_rules_answer_any_stack(rule: Rule, data: st.DataObject) -> None:
    count = data.draw(st.integers(1, 4))
    resources = []
    for i in range(count):
        typ = data.draw(st.sampled_from(types_of(rule)))
        urn = f"urn:pulumi:fuzz::meshstack::{typ}::r{i}"
        dependencies = [r.urn for r in resources if data.draw(st.booleans())]
        resources.append(
            proto.AnalyzerResource(
                type=typ,
                properties=_struct(data.draw(properties(typ))),
                urn=urn,
                name=f"r{i}",
                dependencies=dependencies,
            )
        )
    answered(rule, servicer(rule).AnalyzeStack(proto.AnalyzeStackRequest(resources=resources), None))


def test_the_generated_trees_reach_the_rules_paths() -> None:
    """Guards the generator: the key alphabet holds the paths the rules read."""
    for key in ("metadataOptions", "httpTokens", "blockDeviceMappings", "securityContext", "assumeRolePolicy"):
        assert key in keys()


def test_an_unknown_sentinel_survives_the_wire_as_the_engine_sends_it() -> None:
    """The sentinel strings go through the Struct unchanged, so the servicer sees what the engine sends."""
    struct = _struct({"arn": UNKNOWN_STRING_VALUE})
    assert json.loads(json.dumps(dict(struct)))["arn"] == UNKNOWN_STRING_VALUE


def fragile(resource: ResourceView, config: Any) -> list[str]:
    """A rule written as the pack's were before: trusting a port to be a number."""
    return [f"port {int(resource.props['fromPort'])}"]


def test_the_generator_finds_a_crash_in_a_fragile_rule() -> None:
    """Guards the oracle: a rule that trusts the shape of its input is caught."""
    rule = Rule(
        id="MS-AWS-999",
        name="fragile",
        description="d",
        severity="low",
        enforcement="mandatory",
        remediation="r",
        check=fragile,
        resource_types=("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",),
    )

    def crashes(props: dict[str, Any]) -> bool:
        request = proto.AnalyzeRequest(type=rule.resource_types[0], properties=_struct(props), urn="u", name="r")
        try:
            servicer(rule).Analyze(request, None)
        except Exception:
            return True
        return False

    assert crashes(find(properties(rule.resource_types[0]), crashes, settings=settings(database=None)))
