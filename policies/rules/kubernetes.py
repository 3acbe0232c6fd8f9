"""Security rules for pods, wherever a pod template hides: Pods, PodTemplates, every controller (current and
older API groups), their *Patch kinds, CronJobs and JobSets."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from meshstack.core.resources import ResourceView
from meshstack.policies.pod_security import CONTAINER_KEYS, breaches, containers, namespace_level
from meshstack.policies.rule import Finding, RuleSet, Undecided, as_list, as_map, get, integer, matches_type, text
from meshstack.policies.values import Unknown

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
PLACEHOLDERS = ("account", "region", "project")
ARN = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:([a-z0-9-]+):(\d{12}):")


def _port(value: object) -> str:
    """A port as written: the wire carries numbers as doubles (8080.0), a program may send anything."""
    number = integer(value)
    return str(number) if number is not None else text(value)


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


STRING_LIST = {"type": "array", "items": {"type": "string"}}

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


def image_reference(image: str) -> tuple[str, str, str]:
    """(repository with its registry host, tag, digest) as a container runtime resolves a reference:
    `nginx` is `docker.io/library/nginx`, `repo@sha256:...` has a digest and no tag."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = ""
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    first = name.split("/", 1)[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        name = f"docker.io/{name if '/' in name else 'library/' + name}"
    return name, tag, digest


def stack_identity(resources: Sequence[ResourceView]) -> dict[str, str]:
    """The AWS account and region (from the stack's own ARNs) and the GCP project its resources live in."""
    identity: dict[str, str] = {}
    for r in resources:
        value = r.props.get("arn")
        arn = ARN.match(value) if isinstance(value, str) else None  # an unknown ARN (preview) tells nothing
        if arn and "account" not in identity:
            identity["region"], identity["account"] = arn.group(1), arn.group(2)
        project = r.props.get("project")
        if r.type.startswith("gcp:") and isinstance(project, str) and project and "project" not in identity:
            identity["project"] = project
    return identity


def unfilled(allowed: Sequence[str], identity: Mapping[str, str]) -> list[str]:
    """Allow-list entries that need a placeholder this stack's known values cannot fill."""
    return [e for e in allowed if any(f"{{{key}}}" in e and key not in identity for key in PLACEHOLDERS)]


def registry_patterns(allowed: Sequence[str], identity: Mapping[str, str]) -> list[str]:
    """The allow-list with {account}, {region} and {project} filled in; an entry whose placeholder this
    stack cannot fill (an ECR entry on a GCP stack) admits nothing."""
    patterns = []
    for entry in allowed:
        if any(f"{{{key}}}" in entry and key not in identity for key in PLACEHOLDERS):
            continue
        for key, value in identity.items():
            entry = entry.replace(f"{{{key}}}", value)
        patterns.append(entry)
    return patterns


def _could_fill(entry: str, repository: str) -> bool:
    """Whether an entry with unfilled placeholders could admit the repository once they are known."""
    return fnmatch.fnmatchcase(repository, re.sub(r"\{(account|region|project)\}", "*", entry))


@RULES.rule(
    id="MS-K8S-007",
    name="pod-images-allowed",
    description="Images come from the stack's own registry or an allowed one (and, where required, are "
    "pinned by digest).",
    severity="high",
    enforcement="mandatory",
    kind="stack",
    resource_types=WORKLOAD_TYPES,
    config={
        "allowed_registries": {
            **STRING_LIST,
            "default": [
                "{account}.dkr.ecr.{region}.amazonaws.com/*",
                "*-docker.pkg.dev/{project}/*",
                "registry.k8s.io/*",
                "nvcr.io/nvidia/*",
                "public.ecr.aws/neuron/*",
            ],
            "description": "Globs over the image's repository (registry host and path, without tag or "
            "digest). {account} and {region} are the stack's AWS account and region, {project} its GCP "
            "project, read from the stack's own resources.",
        },
        "require_digest": {
            "type": "boolean",
            "default": False,
            "description": "Images must be image@sha256:... (set in production stacks).",
        },
    },
    remediation="Push the image to the stack's own ECR or Artifact Registry (or add its repository to "
    "allowed_registries) and reference it as registry/name@sha256:<digest>.",
)
def images_allowed(resources: Sequence[ResourceView], config: Mapping[str, Any]) -> Iterable[Finding | Undecided]:
    """Decided image by image: while the stack's ARNs are unknown (`pulumi preview` of a new stack) an image
    that only an {account} entry could admit is undecided; every other image is judged as usual."""
    allowed = [str(p) for p in config["allowed_registries"]]
    identity = stack_identity(resources)
    patterns = registry_patterns(allowed, identity)
    pending = [
        e for e in unfilled(allowed, identity) if any(isinstance(r.props.get("arn"), Unknown) for r in resources)
    ]
    for resource in (r for r in resources if is_workload(r)):
        for where, _, c in each_container(resource):
            image = text(c.get("image"))
            if isinstance(c.get("image"), Unknown):
                yield Undecided(f"{where}: its image is unknown", resource.urn)
                continue
            repository, _, digest = image_reference(image)
            if not any(fnmatch.fnmatchcase(repository, p) for p in patterns):
                if any(_could_fill(e, repository) for e in pending):
                    yield Undecided(f"{where} pulls {repository}: the stack's account is unknown", resource.urn)
                else:
                    yield Finding(f"{where} pulls {repository}, which no allowed registry entry admits", resource.urn)
            if config["require_digest"] and not digest:
                yield Finding(f"{where} image '{image}' is not pinned by digest", resource.urn)


@RULES.rule(
    id="MS-K8S-008",
    name="pod-image-tag-pinned",
    description="Images name a fixed tag or a digest, never :latest or no tag at all.",
    severity="medium",
    enforcement="mandatory",
    resource_types=WORKLOAD_TYPES,
    remediation="Reference the image by a release tag (name:1.4.2) or, better, by digest (name@sha256:...).",
)
def image_tag_pinned(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    for where, _, c in each_container(resource):
        if isinstance(c.get("image"), Unknown):
            continue
        image = text(c.get("image"))
        _, tag, digest = image_reference(image)
        if not digest and tag in ("", "latest"):
            yield f"{where} image '{image}' has no fixed tag (none, or :latest): the next pull may run other code"


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
