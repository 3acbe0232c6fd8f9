"""Where a pod template hides in a Kubernetes resource: Pods, PodTemplates, every controller (current and
older API groups), their *Patch and *List kinds, CronJobs and JobSets; the rules on pods and their images
walk every template through these."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from meshstack.core.resources import ResourceView
from meshstack.policies.pod_security import CONTAINER_KEYS, containers
from meshstack.policies.rule import as_list, as_map, get, matches_type, text

# Where each kind keeps its pod template (metadata and spec); a Pod is its own template. The provider's
# *Patch kinds (server-side apply patches) carry the same template at the same path.
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "PodTemplate": ("template",),
    "ReplicationController": ("spec", "template"),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
# The API groups each kind has been served from, current and older (apps/v1beta1, extensions/v1beta1,
# batch/v1beta1 and v2alpha1): a program may still declare those, and the provider registers them.
KIND_GROUPS: dict[str, tuple[str, ...]] = {
    "Pod": ("core",),
    "PodTemplate": ("core",),
    "ReplicationController": ("core",),
    "Deployment": ("apps", "extensions"),
    "StatefulSet": ("apps",),
    "DaemonSet": ("apps", "extensions"),
    "ReplicaSet": ("apps", "extensions"),
    "Job": ("batch",),
    "CronJob": ("batch",),
}
# Every pulumi-kubernetes type that declares whole objects with a pod template (the kind, and its *List of
# `items`); a JobSet is a CustomResource of its apiVersion.
OBJECT_TYPES = (
    *(
        f"kubernetes:{group}/*:{kind}{suffix}"
        for kind, groups in KIND_GROUPS.items()
        for group in groups
        for suffix in ("", "List")
    ),
    "kubernetes:jobset.x-k8s.io/*:JobSet",
)
# ...and with the *Patch kinds. A patch changes only what it names, so it is judged on what it sets (a
# privileged container, a host namespace) and never on what it leaves out (runAsNonRoot, limits).
WORKLOAD_TYPES = (
    *OBJECT_TYPES,
    *(f"kubernetes:{group}/*:{kind}Patch" for kind, groups in KIND_GROUPS.items() for group in groups),
)
NAMESPACE_TYPE = "kubernetes:core/v1:Namespace"


def kind_of(resource: ResourceView) -> str:
    """The kind, a *Patch kind as the kind it patches and a *List as the kind of its items."""
    kind = resource.type.rsplit(":", 1)[-1]
    return kind.removesuffix("Patch").removesuffix("List") if kind not in TEMPLATE_PATHS else kind


def is_workload(resource: ResourceView) -> bool:
    return matches_type(resource.type, WORKLOAD_TYPES)


def is_object(resource: ResourceView) -> bool:
    """A whole workload object, not a patch of one."""
    return matches_type(resource.type, OBJECT_TYPES)


def pod_templates(resource: ResourceView) -> list[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    """(where, template metadata, pod spec) for each pod template the resource holds."""
    kind = kind_of(resource)
    if resource.type.endswith("List") and kind in TEMPLATE_PATHS:
        objects = [(f"items[{i}] {kind}", item) for i, item in enumerate(as_list(resource.props.get("items")))]
    else:
        objects = [(kind, resource.props)]
    if kind == "JobSet":
        templates = [
            (f"replicatedJobs[{i}]", get(job, "template", "spec", "template"))
            for i, job in enumerate(as_list(get(resource.props, "spec", "replicatedJobs")))
        ]
    elif kind in TEMPLATE_PATHS:
        path = TEMPLATE_PATHS[kind]
        templates = [(where, get(body, *path) if path else body) for where, body in objects]
    else:
        templates = []
    return [
        (where, as_map(get(t, "metadata")), spec)
        for where, t in templates
        if isinstance(t, Mapping) and isinstance(spec := get(t, "spec"), Mapping)
    ]


def pod_specs(resource: ResourceView) -> list[tuple[str, Mapping[str, Any]]]:
    """(where, pod spec) for each pod template the resource holds."""
    return [(where, spec) for where, _, spec in pod_templates(resource)]


def each_container(
    resource: ResourceView, keys: tuple[str, ...] = CONTAINER_KEYS
) -> Iterator[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    """(where, for messages; its pod spec; the container) for every container of every pod template."""
    for where, pod in pod_specs(resource):
        for _, c in containers(pod, keys):
            yield f"{resource.name} ({where}, container {text(c.get('name'))})", pod, c


def namespace_of(resource: ResourceView) -> str:
    return text(get(resource.props, "metadata", "namespace") or "default")
