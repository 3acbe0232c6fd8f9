"""The pack against checkov, an oracle nobody here wrote: the shipped stacks' workload manifests, clean and
mutated (privileged, root, escalation, capabilities, host namespaces, host ports, hostPath and the docker
socket, no limits, :latest, no digest, unconfined seccomp), scanned by both. For every concept both cover, they must
reach the same verdict on every object, except where DISAGREEMENTS names the case and the reason.

checkov does not know JobSet, so a JobSet is scanned as the Jobs its controller creates (conftest.scannable).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshstack.policies.rules.kubernetes_images import image_reference
from meshstack.preview.plan import Preview
from meshstack.preview.policy_runner import evaluate
from meshstack.preview.recorder import Resource
from tests.conftest import SHIPPED_STACKS, scannable
from tests.support.checkov_concepts import CONCEPTS, PACK_CONFIG


def first_container(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["containers"][0]


def context(pod: dict[str, Any]) -> dict[str, Any]:
    return first_container(pod).setdefault("securityContext", {})


MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "privileged": lambda pod: context(pod).update(privileged=True),
    "root": lambda pod: context(pod).update(runAsNonRoot=False, runAsUser=0),
    "escalation": lambda pod: context(pod).update(allowPrivilegeEscalation=True),
    "capability": lambda pod: context(pod).update(capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN"]}),
    "host-pid": lambda pod: pod.update(hostPID=True),
    "host-ipc": lambda pod: pod.update(hostIPC=True),
    "host-network": lambda pod: pod.update(hostNetwork=True),
    "host-port": lambda pod: first_container(pod).update(ports=[{"containerPort": 8080, "hostPort": 8080}]),
    "docker-socket": lambda pod: pod.update(
        volumes=[*pod.get("volumes", []), {"name": "sock", "hostPath": {"path": "/var/run/docker.sock"}}]
    ),
    "host-path": lambda pod: pod.update(
        volumes=[*pod.get("volumes", []), {"name": "data", "hostPath": {"path": "/data"}}]
    ),
    "no-limits": lambda pod: first_container(pod)["resources"].pop("limits"),
    "latest-tag": lambda pod: first_container(pod).update(image=image_reference(first_container(pod)["image"])[0]),
    "unconfined": lambda pod: context(pod).update(seccompProfile={"type": "Unconfined"}),
}
# (mutation, concept) -> why the two tools differ on purpose.
DISAGREEMENTS: dict[tuple[str, str], str] = {
    ("host-path", "hostPath volume"): "checkov checks only for the docker socket (CKV_K8S_27); the pack flags "
    "every hostPath outside its allow-list, as Pod Security baseline does",
}


@dataclass(frozen=True)
class Case:
    mutation: str
    stack: str
    body: dict[str, Any]

    @property
    def file(self) -> str:
        meta = self.body["metadata"]
        return f"{self.stack}--{self.mutation}--{self.body['kind'].lower()}-{meta['name']}.yaml"


def pod_of(body: dict[str, Any]) -> dict[str, Any]:
    return body["spec"]["template"]["spec"]


def cases(previews: dict[str, Preview]) -> tuple[list[Case], dict[str, list[dict[str, Any]]]]:
    out, namespaces = [], {}
    for stack, preview in previews.items():
        objects = scannable(preview.resources)
        namespaces[stack] = [o for o in objects if o["kind"] == "Namespace"]
        for body in (o for o in objects if o["kind"] in ("Deployment", "Job")):
            out.append(Case("clean", stack, body))
            for name, mutate in MUTATIONS.items():
                mutated = copy.deepcopy(body)
                mutate(pod_of(mutated))
                out.append(Case(name, stack, mutated))
    return out, namespaces


def as_resource(body: dict[str, Any], index: int) -> Resource:
    group_version = body["apiVersion"] if "/" in body["apiVersion"] else f"core/{body['apiVersion']}"
    typ = f"kubernetes:{group_version}:{body['kind']}"
    name = f"{body['metadata']['name']}-{index}"
    return Resource(f"urn:pulumi:oracle::meshstack::{typ}::{name}", typ, name, "", True, "", [], body, body)


Verdicts = dict[str, set[tuple[str, str]]]


def pack_verdicts(case_list: list[Case], namespaces: dict[str, list[dict[str, Any]]]) -> Verdicts:
    """(rule id, message) the pack reports per case, through the analyzer protocol (one evaluation per stack)."""
    fired: Verdicts = {c.file: set() for c in case_list}
    for stack in namespaces:
        mine = [c for c in case_list if c.stack == stack]
        resources = [as_resource(ns, i) for i, ns in enumerate(namespaces[stack])]
        by_urn = {}
        for i, case in enumerate(mine):
            resource = as_resource(case.body, 1000 + i)
            resources.append(resource)
            by_urn[resource.urn] = case.file
        for violation in evaluate(resources, PACK_CONFIG):
            if violation.urn in by_urn:
                fired[by_urn[violation.urn]].add((violation.rule_id, violation.message))
    return fired


def checkov_verdicts(case_list: list[Case], folder: Path) -> dict[str, set[str]]:
    """The check ids checkov fails per case file, from one scan of the folder."""
    for case in case_list:
        (folder / case.file).write_text(yaml.safe_dump(case.body, sort_keys=False))
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("checkov")),
            *("-d", str(folder), "--framework", "kubernetes", "-o", "json", "--quiet", "--skip-download"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    failed: dict[str, set[str]] = {c.file: set() for c in case_list}
    for part in reports:
        for check in part["results"]["failed_checks"]:
            failed[Path(check["file_path"]).name].add(check["check_id"])
    return failed


@pytest.fixture(scope="module")
def verdicts(
    preview: Callable[[str], Preview], tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[Case], Verdicts, dict[str, set[str]]]:
    case_list, namespaces = cases({stack: preview(stack) for stack in SHIPPED_STACKS})
    return case_list, pack_verdicts(case_list, namespaces), checkov_verdicts(case_list, tmp_path_factory.mktemp("ck"))


def comparisons(
    case_list: list[Case], pack: Verdicts, checkov: dict[str, set[str]]
) -> list[tuple[Case, str, bool, bool]]:
    return [
        (case, concept, bool(checks & checkov[case.file]), any(r == rule and part in m for r, m in pack[case.file]))
        for case in case_list
        for concept, (checks, (rule, part)) in CONCEPTS.items()
    ]


@pytest.mark.slow
def test_the_pack_and_checkov_agree_concept_by_concept(
    verdicts: tuple[list[Case], Verdicts, dict[str, set[str]]],
) -> None:
    case_list, pack, checkov = verdicts
    rows = comparisons(case_list, pack, checkov)
    disagree = [
        f"{case.file}: {concept}: checkov {'fails' if ck else 'passes'}, pack {'fails' if ours else 'passes'}"
        for case, concept, ck, ours in rows
        if ck != ours and (case.mutation, concept) not in DISAGREEMENTS
    ]
    assert not disagree, "\n".join(disagree)
    print(f"\n{len(CONCEPTS)} concepts, {len(rows)} comparisons, {sum(ck == ours for _, _, ck, ours in rows)} agree")


@pytest.mark.slow
def test_every_mutation_is_caught_by_both_tools(
    verdicts: tuple[list[Case], Verdicts, dict[str, set[str]]],
) -> None:
    """Guards the oracle itself: a mutation neither tool notices would make agreement meaningless."""
    case_list, pack, checkov = verdicts
    clean = {(c.stack, c.body["metadata"]["name"]): c.file for c in case_list if c.mutation == "clean"}
    for case in (c for c in case_list if c.mutation != "clean"):
        before = clean[(case.stack, case.body["metadata"]["name"])]
        assert pack[case.file] - pack[before], f"the pack misses {case.file}"
        if case.mutation not in {mutation for mutation, _ in DISAGREEMENTS}:
            assert checkov[case.file] - checkov[before], f"checkov misses {case.file}"


@pytest.mark.slow
def test_every_declared_disagreement_really_happens(
    verdicts: tuple[list[Case], Verdicts, dict[str, set[str]]],
) -> None:
    case_list, pack, checkov = verdicts
    differing = {(c.mutation, concept) for c, concept, ck, ours in comparisons(case_list, pack, checkov) if ck != ours}
    assert set(DISAGREEMENTS) <= differing, set(DISAGREEMENTS) - differing
