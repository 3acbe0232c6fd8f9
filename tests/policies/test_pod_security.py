"""The Pod Security Standards through the pack, as `meshstack preview` evaluates it: each control of the
published standard (kubernetes.io/docs/concepts/security/pod-security-standards) on a pod that breaks
only it, in a namespace that enforces baseline or restricted."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from meshstack.preview.policy_runner import Violation, evaluate
from meshstack.preview.recorder import Resource

RESTRICTED_CONTAINER: dict[str, Any] = {
    "name": "main",
    "image": "registry.k8s.io/pause:3.10",
    "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
}
RESTRICTED_POD: dict[str, Any] = {"containers": [RESTRICTED_CONTAINER], "volumes": [{"name": "t", "emptyDir": {}}]}


def resource(typ: str, name: str, props: dict[str, Any]) -> Resource:
    urn = f"urn:pulumi:test::meshstack::{typ}::{name}"
    return Resource(urn, typ, name, "", True, "", [], props, props)


def namespace(level: str | None) -> Resource:
    labels = {"pod-security.kubernetes.io/enforce": level} if level else {}
    return resource("kubernetes:core/v1:Namespace", "ns", {"metadata": {"name": "ml", "labels": labels}})


def deployment(pod: dict[str, Any], annotations: dict[str, str] | None = None) -> Resource:
    template = {"metadata": {"annotations": annotations or {}}, "spec": pod}
    return resource(
        "kubernetes:apps/v1:Deployment", "app", {"metadata": {"namespace": "ml"}, "spec": {"template": template}}
    )


def pss(level: str | None, pod: dict[str, Any], annotations: dict[str, str] | None = None) -> list[Violation]:
    found = evaluate([namespace(level), deployment(pod, annotations)])
    return [v for v in found if v.rule_id == "MS-K8S-001"]


def breaking(change: dict[str, Any] | None = None, **pod: Any) -> dict[str, Any]:
    """The restricted pod with one container change (merged into securityContext) or pod field."""
    out = copy.deepcopy(RESTRICTED_POD)
    container = out["containers"][0]
    for key, value in (change or {}).items():
        if key in ("ports",):
            container[key] = value
        else:
            container["securityContext"][key] = value
    out.update(pod)
    return out


BASELINE_CASES = [
    ("HostProcess", breaking({"windowsOptions": {"hostProcess": True}})),
    ("Host Namespaces", breaking(hostPID=True)),
    ("Host Namespaces", breaking(hostIPC=True)),
    ("Host Namespaces", breaking(hostNetwork=True)),
    ("Privileged Containers", breaking({"privileged": True})),
    ("Capabilities", breaking({"capabilities": {"drop": ["ALL"], "add": ["IPC_LOCK"]}})),
    ("Capabilities", breaking({"capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}})),
    ("HostPath Volumes", breaking(volumes=[{"name": "h", "hostPath": {"path": "/var/run"}}])),
    ("Host Ports", breaking({"ports": [{"containerPort": 80, "hostPort": 80}]})),
    ("AppArmor", breaking({"appArmorProfile": {"type": "Unconfined"}})),
    ("SELinux", breaking({"seLinuxOptions": {"type": "spc_t"}})),
    ("SELinux", breaking({"seLinuxOptions": {"user": "system_u"}})),
    ("/proc Mount Type", breaking({"procMount": "Unmasked"})),
    ("Seccomp", breaking({"seccompProfile": {"type": "Unconfined"}})),
    ("Sysctls", breaking(securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "1"}]})),
]
RESTRICTED_CASES = [
    ("Volume Types", breaking(volumes=[{"name": "n", "nfs": {"server": "s", "path": "/"}}])),
    ("Privilege Escalation", breaking({"allowPrivilegeEscalation": True})),
    ("Running as Non-root", breaking({"runAsNonRoot": False})),
    ("Running as Non-root user", breaking({"runAsUser": 0})),
    ("Seccomp", breaking({"seccompProfile": None})),
    ("Capabilities", breaking({"capabilities": {"drop": ["NET_RAW"]}})),
    ("Capabilities", breaking({"capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}})),
]


@pytest.mark.parametrize(("control", "pod"), BASELINE_CASES, ids=[c for c, _ in BASELINE_CASES])
def test_baseline_controls_are_enforced_in_a_baseline_namespace(control: str, pod: dict[str, Any]) -> None:
    [violation] = pss("baseline", pod)
    assert f"(enforce: baseline): {control} (" in violation.message
    assert violation.level == "mandatory" and violation.urn.endswith("::app")


@pytest.mark.parametrize(("control", "pod"), RESTRICTED_CASES, ids=[c for c, _ in RESTRICTED_CASES])
def test_restricted_controls_apply_only_where_restricted_is_enforced(control: str, pod: dict[str, Any]) -> None:
    [violation] = pss("restricted", pod)
    assert f"{control} (" in violation.message
    assert pss("baseline", pod) == []


def test_the_restricted_pod_passes_every_level() -> None:
    for level in ("privileged", "baseline", "restricted", None):
        assert pss(level, RESTRICTED_POD) == []


def test_a_privileged_namespace_admits_anything() -> None:
    assert pss("privileged", breaking({"privileged": True}, hostNetwork=True)) == []


def test_a_namespace_with_no_label_is_held_to_baseline() -> None:
    assert pss(None, breaking({"allowPrivilegeEscalation": True})) == []
    [violation] = pss(None, breaking({"privileged": True}))
    assert "(enforce: baseline)" in violation.message


def test_pod_level_settings_satisfy_restricted_for_every_container() -> None:
    pod = breaking({"runAsNonRoot": None, "seccompProfile": None})
    pod["securityContext"] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert pss("restricted", pod) == []


def test_init_and_ephemeral_containers_are_checked_too() -> None:
    bad = {**RESTRICTED_CONTAINER, "name": "setup", "securityContext": {"privileged": True}}
    [violation] = pss("baseline", {**RESTRICTED_POD, "initContainers": [bad]})
    assert "initContainer setup: privileged: true" in violation.message
    [violation] = pss("baseline", {**RESTRICTED_POD, "ephemeralContainers": [bad]})
    assert "ephemeralContainer setup" in violation.message


def test_apparmor_annotations_are_read_from_the_pod_template() -> None:
    annotation = {"container.apparmor.security.beta.kubernetes.io/main": "unconfined"}
    [violation] = pss("baseline", RESTRICTED_POD, annotation)
    assert "AppArmor (annotation" in violation.message
    assert (
        pss("baseline", RESTRICTED_POD, {"container.apparmor.security.beta.kubernetes.io/main": "runtime/default"})
        == []
    )


def test_a_pod_that_breaks_several_controls_names_them_all() -> None:
    [violation] = pss("restricted", breaking({"privileged": True, "runAsUser": 0}, hostPID=True))
    for control in ("Host Namespaces", "Privileged Containers", "Running as Non-root user"):
        assert control in violation.message
