"""Security rules for pods, wherever a pod template hides: Pods, Deployments, Jobs, JobSets."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from meshstack.resources import ResourceView
from policies.rule import Rule, as_list, get

# Where each kind keeps its pod spec.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
WORKLOAD_TYPES = tuple(f"kubernetes:*{kind}" for kind in (*POD_SPEC_PATHS, "JobSet"))
INTERNAL_LB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
    "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
    "networking.gke.io/load-balancer-type": "Internal",
}


def kind_of(resource: ResourceView) -> str:
    return resource.type.rsplit(":", 1)[-1]


def pod_specs(resource: ResourceView) -> list[tuple[str, Mapping[str, Any]]]:
    """(where, pod spec) for each pod template the resource holds."""
    kind = kind_of(resource)
    if kind == "JobSet":
        return [
            (f"replicatedJobs[{i}]", spec)
            for i, job in enumerate(as_list(get(resource.props, "spec", "replicatedJobs")))
            if isinstance(spec := get(job, "template", "spec", "template", "spec"), Mapping)
        ]
    path = POD_SPEC_PATHS.get(kind)
    spec = get(resource.props, *path) if path else None
    return [(kind, spec)] if isinstance(spec, Mapping) else []


CONTAINER_KEYS = ("initContainers", "containers", "ephemeralContainers")


def each_container(
    resource: ResourceView, keys: tuple[str, ...] = CONTAINER_KEYS
) -> Iterator[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    """(where, for messages; its pod spec; the container) for every container of every pod template."""
    for where, pod in pod_specs(resource):
        for key in keys:
            for c in as_list(pod.get(key)):
                if isinstance(c, Mapping):
                    yield f"{resource.name} ({where}, container {c.get('name')})", pod, c


def not_privileged(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    for where, _, c in each_container(resource):
        if get(c, "securityContext", "privileged") is True:
            yield f"{where} runs privileged"


def no_host_namespaces(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    for where, pod in pod_specs(resource):
        shared = [key for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key) is True]
        if shared:
            yield f"{resource.name} ({where}) shares the host's namespaces: {', '.join(shared)}"


def run_as_non_root(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    for where, pod, c in each_container(resource):
        pod_context = pod.get("securityContext") or {}
        context = c.get("securityContext") or {}
        non_root = get(context, "runAsNonRoot", default=get(pod_context, "runAsNonRoot"))
        user = get(context, "runAsUser", default=get(pod_context, "runAsUser"))
        if non_root is not True or user in (0, 0.0):
            yield f"{where} may run as root (set runAsNonRoot: true and a non-zero runAsUser)"


def no_privilege_escalation(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    for where, _, c in each_container(resource):
        if get(c, "securityContext", "allowPrivilegeEscalation") is not False:
            yield f"{where} does not set allowPrivilegeEscalation: false"


def capabilities_allowed(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    allowed = {str(c) for c in config["allowed_capabilities"]}
    for where, _, c in each_container(resource):
        added = {str(cap) for cap in as_list(get(c, "securityContext", "capabilities", "add"))}
        extra = sorted(added - allowed)
        if extra:
            yield f"{where} adds capabilities {', '.join(extra)}"


def registry_of(image: str) -> str:
    first = image.split("/", 1)[0]
    return first if "/" in image and ("." in first or ":" in first or first == "localhost") else "docker.io"


def _registry_allowed(registry: str, allowed: list[str]) -> bool:
    for pattern in allowed:
        if pattern.startswith("*."):
            if registry.endswith(pattern[1:]):
                return True
        elif registry == pattern:
            return True
    return False


def images_allowed(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    allowed = [str(r) for r in config["allowed_registries"]]
    for where, _, c in each_container(resource):
        image = str(c.get("image", ""))
        registry = registry_of(image)
        if not _registry_allowed(registry, allowed):
            yield f"{where} pulls from {registry}, which is not an allowed registry"
        if config["require_digest"] and "@sha256:" not in image:
            yield f"{where} image '{image}' is not pinned by digest"


def resource_limits(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    for where, _, c in each_container(resource, keys=("containers",)):
        limits = get(c, "resources", "limits") or {}
        missing = [k for k in config["required_limits"] if k not in limits]
        if missing:
            yield f"{where} sets no limit for {', '.join(missing)}"


def load_balancer_internal(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    if get(resource.props, "spec", "type") != "LoadBalancer":
        return
    annotations = get(resource.props, "metadata", "annotations") or {}
    internal = any(annotations.get(k) == v for k, v in INTERNAL_LB_ANNOTATIONS.items())
    name = get(resource.props, "metadata", "name", default=resource.name)
    if not internal and name not in config["allowed_public_services"]:
        yield f"service '{name}' is an internet-facing load balancer"


RULES = [
    Rule(
        name="pod-not-privileged",
        description="No container runs privileged.",
        severity="critical",
        enforcement="mandatory",
        resource_types=WORKLOAD_TYPES,
        check=not_privileged,
        remediation="Remove securityContext.privileged; add only the capability the workload needs.",
    ),
    Rule(
        name="pod-no-host-namespaces",
        description="Pods do not share the host's network, PID or IPC namespace.",
        severity="high",
        enforcement="mandatory",
        resource_types=WORKLOAD_TYPES,
        check=no_host_namespaces,
        remediation="Remove hostNetwork, hostPID and hostIPC; EFA works through the device plugin, not hostNetwork.",
    ),
    Rule(
        name="pod-run-as-non-root",
        description="Containers run as a non-root user.",
        severity="high",
        enforcement="mandatory",
        resource_types=WORKLOAD_TYPES,
        check=run_as_non_root,
        remediation="Set securityContext.runAsNonRoot: true and runAsUser to a non-zero uid.",
    ),
    Rule(
        name="pod-no-privilege-escalation",
        description="Containers cannot gain more privileges than they start with.",
        severity="high",
        enforcement="mandatory",
        resource_types=WORKLOAD_TYPES,
        check=no_privilege_escalation,
        remediation="Set securityContext.allowPrivilegeEscalation: false on every container.",
    ),
    Rule(
        name="pod-capabilities-allowed",
        description="Containers add only allowed Linux capabilities (EFA needs IPC_LOCK).",
        severity="high",
        enforcement="mandatory",
        resource_types=WORKLOAD_TYPES,
        check=capabilities_allowed,
        config={"allowed_capabilities": {"type": "array", "items": {"type": "string"}, "default": ["IPC_LOCK"]}},
        remediation="Drop ALL and add back only what is listed in this rule's allowed_capabilities.",
    ),
    Rule(
        name="pod-images-allowed",
        description="Images come from allowed registries (and, where required, are pinned by digest).",
        severity="medium",
        enforcement="mandatory",
        resource_types=WORKLOAD_TYPES,
        check=images_allowed,
        config={
            "allowed_registries": {
                "type": "array",
                "items": {"type": "string"},
                "default": [
                    "*.amazonaws.com",
                    "public.ecr.aws",
                    "nvcr.io",
                    "ghcr.io",
                    "registry.k8s.io",
                    "*.pkg.dev",
                    "gcr.io",
                ],
                "description": "Registry hosts; '*.example.com' matches any subdomain.",
            },
            "require_digest": {
                "type": "boolean",
                "default": False,
                "description": "Images must be image@sha256:... (set in production stacks).",
            },
        },
        remediation="Push the image to an allowed registry and reference it as registry/name@sha256:<digest>.",
    ),
    Rule(
        name="pod-resource-limits",
        description="Containers set resource limits.",
        severity="medium",
        enforcement="advisory",
        resource_types=WORKLOAD_TYPES,
        check=resource_limits,
        config={"required_limits": {"type": "array", "items": {"type": "string"}, "default": ["cpu", "memory"]}},
        remediation="Set resources.limits for cpu and memory (and the accelerator you request).",
    ),
    Rule(
        name="service-load-balancer-internal",
        description="Services of type LoadBalancer are internal unless allowed.",
        severity="high",
        enforcement="mandatory",
        resource_types=("kubernetes:core/v1:Service",),
        check=load_balancer_internal,
        config={"allowed_public_services": {"type": "array", "items": {"type": "string"}, "default": []}},
        remediation="Annotate service.beta.kubernetes.io/aws-load-balancer-scheme: internal (GKE: "
        "networking.gke.io/load-balancer-type: Internal), or list the service in allowed_public_services.",
    ),
]
