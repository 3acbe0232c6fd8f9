"""The pack against checkov on checkov's own Kubernetes fixtures (tests/fixtures/checkov_k8s, copied from
checkov's repository with their NOTICE): on every concept both cover, for every object checkov judged, the
pack reaches checkov's verdict, except where DISAGREEMENTS names the case and the reason.

The stack-derived oracle (test_checkov_oracle.py) proves agreement on what meshstack renders; these
fixtures are what checkov's authors wrote to break their checks: older API groups, CronJobs, DaemonSets,
init containers, malformed specs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshstack.policies.pod_templates import is_workload
from meshstack.preview.policy_runner import evaluate
from meshstack.preview.recorder import Resource
from tests.conftest import FIXTURES as TEST_FIXTURES
from tests.support.checkov_concepts import CONCEPTS, PACK_CONFIG

FIXTURES = TEST_FIXTURES / "checkov_k8s"
# (fixture file, concept) -> why the two differ on purpose; a file of "*" is every fixture.
DISAGREEMENTS: dict[tuple[str, str], str] = {
    ("*", "hostPath volume"): "checkov checks only for the docker socket (CKV_K8S_27); the pack flags every "
    "hostPath outside its allow-list, as Pod Security baseline does",
    **{
        (f, c): "no container to judge (an empty spec, an empty container list, a spec that is a list): the pack "
        "judges the containers there are, checkov fails what it cannot read"
        for f, c in (
            ("AllowedCapabilities/cronjob-UNKOWN.yaml", "root user"),
            ("AllowedCapabilities/cronjob-UNKOWN.yaml", "seccomp profile"),
            ("AllowedCapabilitiesSysAdmin/pod-FAILED2.yaml", "seccomp profile"),
            ("RootContainers/rootContainersFAILED-malformed-spec.yaml", "root user"),
            ("RootContainers/rootContainersFAILED-malformed-spec.yaml", "seccomp profile"),
        )
    },
    **{
        (f, "seccomp profile"): "seccomp only through the seccomp.security.alpha.kubernetes.io annotations, "
        "deprecated since 1.19: Pod Security's restricted check reads seccompProfile, so admission in the "
        "clusters meshstack runs (1.31-1.34) rejects the pod, where checkov still counts the annotation"
        for f in (
            "Seccomp/cronjob-seccomp-PASSED.yaml",
            "Seccomp/pod-seccomp-PASSED.yaml",
            "Seccomp/pod-seccomp-PASSED2.yaml",
            "Seccomp/pod-seccomp-PASSED6.yaml",
        )
    },
}
# The fixtures run in namespaces that enforce restricted, as meshstack's do: the seccomp concept is
# restricted's (baseline forbids only Unconfined).
NAMESPACE_LABELS = {"pod-security.kubernetes.io/enforce": "restricted"}


def documents(path: Path) -> list[dict[str, Any]]:
    """The objects of a fixture file; a file YAML cannot read holds none for either tool."""
    try:
        docs = list(yaml.safe_load_all(path.read_text()))
    except yaml.YAMLError:
        return []
    return [d for d in docs if isinstance(d, dict) and isinstance(d.get("kind"), str)]


def object_id(body: dict[str, Any]) -> str:
    """checkov's resource id: Kind.namespace.name."""
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    return f"{body['kind']}.{meta.get('namespace') or 'default'}.{meta.get('name')}"


def as_resource(body: dict[str, Any], urn_name: str) -> Resource:
    version = str(body.get("apiVersion", "v1"))
    group_version = version if "/" in version else f"core/{version}"
    typ = f"kubernetes:{group_version}:{body['kind']}"
    return Resource(f"urn:pulumi:fixtures::meshstack::{typ}::{urn_name}", typ, urn_name, "", True, "", [], body, body)


Key = tuple[str, str]  # (fixture file relative to FIXTURES, checkov resource id)


def pack_verdicts() -> dict[Key, set[tuple[str, str]]]:
    resources, keys = [], {}
    for path in sorted(FIXTURES.rglob("*.y*ml")) + sorted(FIXTURES.rglob("*.json")):
        for i, body in enumerate(documents(path)):
            resource = as_resource(body, f"{path.stem}-{i}")
            if is_workload(resource.view()):
                resources.append(resource)
                keys[resource.urn] = (str(path.relative_to(FIXTURES)), object_id(body))
    namespaces = {key[1].split(".")[1] for key in keys.values()}
    resources += [
        as_resource({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": NAMESPACE_LABELS}}, n)
        for n in sorted(namespaces)
    ]
    found: dict[Key, set[tuple[str, str]]] = {key: set() for key in keys.values()}
    for v in evaluate(resources, PACK_CONFIG):
        if v.urn in keys:
            found[keys[v.urn]].add((v.rule_id, v.message))
    return found


def checkov_verdicts() -> dict[Key, dict[str, bool]]:
    """check id -> failed, per object checkov judged, from one scan of the fixtures."""
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("checkov")),
            *("-d", str(FIXTURES), "--framework", "kubernetes", "-o", "json", "--skip-download"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(done.stdout)
    out: dict[Key, dict[str, bool]] = {}
    for part in report if isinstance(report, list) else [report]:
        for result, failed in (("passed_checks", False), ("failed_checks", True)):
            for check in part["results"][result]:
                key = (check["file_path"].lstrip("/"), check["resource"])
                out.setdefault(key, {})[check["check_id"]] = failed
    return out


@pytest.fixture(scope="module")
def verdicts() -> tuple[dict[Key, set[tuple[str, str]]], dict[Key, dict[str, bool]]]:
    return pack_verdicts(), checkov_verdicts()


def comparisons(
    pack: dict[Key, set[tuple[str, str]]], checkov: dict[Key, dict[str, bool]]
) -> list[tuple[Key, str, bool, bool]]:
    rows = []
    for key, fired in pack.items():
        judged = checkov.get(key, {})
        for concept, (checks, (rule, part)) in CONCEPTS.items():
            if not checks & set(judged):
                continue  # checkov did not judge this object on this concept
            ck = any(judged.get(c, False) for c in checks)
            rows.append((key, concept, ck, any(r == rule and part in m for r, m in fired)))
    return rows


@pytest.mark.slow
def test_the_pack_agrees_with_checkov_on_its_own_fixtures(
    verdicts: tuple[dict[Key, set[tuple[str, str]]], dict[Key, dict[str, bool]]],
) -> None:
    pack, checkov = verdicts
    rows = comparisons(pack, checkov)
    concepts = {concept for _, concept, _, _ in rows}
    assert len(concepts) == len(CONCEPTS), f"checkov judged no fixture on {set(CONCEPTS) - concepts}"
    disagree = [
        f"{key[0]} {key[1]}: {concept}: checkov {'fails' if ck else 'passes'}, pack {'fails' if ours else 'passes'}"
        for key, concept, ck, ours in rows
        if ck != ours and (key[0], concept) not in DISAGREEMENTS and ("*", concept) not in DISAGREEMENTS
    ]
    assert not disagree, "\n".join(disagree)
    agree = sum(ck == ours for _, _, ck, ours in rows)
    print(f"\n{len(concepts)} concepts, {len(rows)} comparisons on checkov's fixtures, {agree} agree")


@pytest.mark.slow
def test_every_declared_disagreement_on_the_fixtures_really_happens(
    verdicts: tuple[dict[Key, set[tuple[str, str]]], dict[Key, dict[str, bool]]],
) -> None:
    differing = {(key[0], concept) for key, concept, ck, ours in comparisons(*verdicts) if ck != ours}
    named = {d for d in DISAGREEMENTS if d[0] != "*"}
    assert named <= differing, named - differing
    assert any(concept == "hostPath volume" for _, concept in differing)
