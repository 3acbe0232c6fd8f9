"""Security rules for pods, wherever a pod template hides: Pods, PodTemplates, every controller (current and
older API groups), their *Patch kinds, CronJobs and JobSets."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from meshstack.core.resources import ResourceView
from meshstack.policies.pod_security import breaches, namespace_level
from meshstack.policies.pod_templates import (
    NAMESPACE_TYPE,
    OBJECT_TYPES,
    WORKLOAD_TYPES,
    each_container,
    is_object,
    namespace_of,
    pod_specs,
    pod_templates,
)
from meshstack.policies.rule import (
    STRING_LIST,
    Finding,
    RuleSet,
    as_list,
    as_map,
    get,
    integer,
    text,
)


def _port(value: object) -> str:
    """A port as written: the wire carries numbers as doubles (8080.0), a program may send anything."""
    number = integer(value)
    return str(number) if number is not None else text(value)


RULES = RuleSet()


@RULES.rule(
    id="MS-K8S-001",
    name="pod-security-standards",
    description="Every pod template passes the Pod Security Standard its namespace enforces (baseline where "
    "the namespace sets none): admission would reject it otherwise.",
    severity="critical",
    enforcement="mandatory",
    kind="stack",
    resource_types=(*OBJECT_TYPES, NAMESPACE_TYPE),
    config={
        "default_level": {
            "type": "string",
            "enum": ["privileged", "baseline", "restricted"],
            "default": "baseline",
            "description": "The level assumed for a namespace with no pod-security.kubernetes.io/enforce label.",
        }
    },
    remediation="Change the pod to meet the control named (meshstack's workloads meet restricted), or label "
    "its namespace with the level it really needs.",
)
def pod_security(resources: Sequence[ResourceView], config: Mapping[str, Any]) -> Iterable[Finding]:
    """Each pod template against the level its namespace enforces, as admission would judge the pods."""
    default = str(config["default_level"])
    levels = {
        text(get(r.props, "metadata", "name")): namespace_level(as_map(get(r.props, "metadata", "labels")), default)  # type: ignore[arg-type]
        for r in resources
        if r.type == NAMESPACE_TYPE
    }
    for resource in (r for r in resources if is_object(r)):
        namespace = namespace_of(resource)
        level = levels.get(namespace, default)
        for where, metadata, pod in pod_templates(resource):
            found = breaches(pod, level, as_map(get(metadata, "annotations")))  # type: ignore[arg-type]
            if found:
                yield Finding(
                    f"{resource.name} ({where}) would be rejected by namespace '{namespace}' "
                    f"(enforce: {level}): {'; '.join(str(b) for b in found)}",
                    resource.urn,
                )


@RULES.rule(
    id="MS-K8S-002",
    name="pod-not-privileged",
    description="No container runs privileged.",
    severity="critical",
    enforcement="mandatory",
    resource_types=WORKLOAD_TYPES,
    remediation="Remove securityContext.privileged; add only the capability the workload needs.",
)
def not_privileged(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    for where, _, c in each_container(resource):
        if get(c, "securityContext", "privileged") is True:
            yield f"{where} runs privileged"


@RULES.rule(
    id="MS-K8S-003",
    name="pod-no-host-namespaces",
    description="Pods do not share the host's network, PID or IPC namespace.",
    severity="high",
    enforcement="mandatory",
    resource_types=WORKLOAD_TYPES,
    remediation="Remove hostNetwork, hostPID and hostIPC; EFA works through the device plugin, not hostNetwork.",
)
def no_host_namespaces(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    for where, pod in pod_specs(resource):
        shared = [key for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key) is True]
        if shared:
            yield f"{resource.name} ({where}) shares the host's namespaces: {', '.join(shared)}"


@RULES.rule(
    id="MS-K8S-004",
    name="pod-run-as-non-root",
    description="Containers run as a non-root user.",
    severity="high",
    enforcement="mandatory",
    resource_types=OBJECT_TYPES,
    remediation="Set securityContext.runAsNonRoot: true and runAsUser to a non-zero uid.",
)
def run_as_non_root(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    for where, pod, c in each_container(resource):
        pod_context = as_map(pod.get("securityContext"))
        context = as_map(c.get("securityContext"))
        non_root = get(context, "runAsNonRoot", default=get(pod_context, "runAsNonRoot"))
        user = integer(get(context, "runAsUser", default=get(pod_context, "runAsUser")))
        # A non-zero runAsUser overrides the image's USER: the container runs as that uid whatever the image says.
        if user == 0 or non_root is False or (non_root is not True and not (user is not None and user > 0)):
            yield f"{where} may run as root (set runAsNonRoot: true and a non-zero runAsUser)"


@RULES.rule(
    id="MS-K8S-005",
    name="pod-no-privilege-escalation",
    description="Containers cannot gain more privileges than they start with.",
    severity="high",
    enforcement="mandatory",
    resource_types=OBJECT_TYPES,
    remediation="Set securityContext.allowPrivilegeEscalation: false on every container.",
)
def no_privilege_escalation(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    for where, _, c in each_container(resource):
        if get(c, "securityContext", "allowPrivilegeEscalation") is not False:
            yield f"{where} does not set allowPrivilegeEscalation: false"


@RULES.rule(
    id="MS-K8S-006",
    name="pod-capabilities-allowed",
    description="Containers add only the Linux capabilities this rule allows (none by default).",
    severity="high",
    enforcement="mandatory",
    resource_types=WORKLOAD_TYPES,
    config={"allowed_capabilities": {**STRING_LIST, "default": []}},
    remediation="Drop ALL and add nothing back; EFA needs the node's memlock limit, which meshstack's EFA "
    "pools raise, not IPC_LOCK. List a capability in allowed_capabilities only with a reason.",
)
def capabilities_allowed(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    allowed = {str(c) for c in config["allowed_capabilities"]}
    for where, _, c in each_container(resource):
        added = {text(cap) for cap in as_list(get(c, "securityContext", "capabilities", "add"))}
        extra = sorted(added - allowed)
        if extra:
            yield f"{where} adds capabilities {', '.join(extra)}"


def _path_allowed(path: str, allowed: Sequence[str]) -> bool:
    path = path.rstrip("/") or "/"
    return any(path == a.rstrip("/") or path.startswith(a.rstrip("/") + "/") for a in allowed)


@RULES.rule(
    id="MS-K8S-010",
    name="pod-no-host-path",
    description="Pods mount no directory of the node (hostPath), except the paths this rule allows.",
    severity="high",
    enforcement="mandatory",
    resource_types=WORKLOAD_TYPES,
    config={
        "allowed_host_paths": {
            **STRING_LIST,
            "default": [],
            "description": "Path prefixes a pod may mount (a CSI driver's /var/lib/kubelet, a device "
            "plugin's /var/lib/kubelet/device-plugins).",
        }
    },
    remediation="Use a persistent volume claim, an emptyDir or a CSI volume; list the path in "
    "allowed_host_paths only for node agents that need it.",
)
def no_host_path(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    allowed = [str(a) for a in config["allowed_host_paths"]]
    for where, pod in pod_specs(resource):
        for volume in as_list(pod.get("volumes")):
            path = get(volume, "hostPath", "path")
            if get(volume, "hostPath") is not None and not _path_allowed(text(path), allowed):
                yield f"{resource.name} ({where}) mounts the node's {path} (volume {get(volume, 'name')})"


@RULES.rule(
    id="MS-K8S-011",
    name="pod-no-host-port",
    description="Containers bind no port on the node (hostPort), except the ports this rule allows.",
    severity="medium",
    enforcement="mandatory",
    resource_types=WORKLOAD_TYPES,
    config={"allowed_host_ports": {"type": "array", "items": {"type": "integer"}, "default": []}},
    remediation="Expose the port through a Service; list it in allowed_host_ports only for node agents.",
)
def no_host_port(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    allowed = {integer(p) for p in config["allowed_host_ports"]} - {None}
    for where, _, c in each_container(resource):
        for port in as_list(c.get("ports")):
            host = get(port, "hostPort")
            if host not in (None, 0) and integer(host) not in allowed:
                yield f"{where} binds port {_port(host)} on the node (hostPort)"


@RULES.rule(
    id="MS-K8S-009",
    name="pod-resource-limits",
    description="Containers set resource limits.",
    severity="medium",
    enforcement="advisory",
    resource_types=OBJECT_TYPES,
    config={"required_limits": {**STRING_LIST, "default": ["cpu", "memory"]}},
    remediation="Set resources.limits for cpu and memory (and the accelerator you request).",
)
def resource_limits(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    for where, _, c in each_container(resource, keys=("containers",)):
        limits = as_map(get(c, "resources", "limits"))
        missing = [str(k) for k in config["required_limits"] if k not in limits]
        if missing:
            yield f"{where} sets no limit for {', '.join(missing)}"
