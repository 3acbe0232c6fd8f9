"""The Pod Security Standards, control by control, as the pod-security admission controller applies them.

Source: https://kubernetes.io/docs/concepts/security/pod-security-standards/ (the policy for the latest
Kubernetes minor, read 2026-11-25). A namespace's `pod-security.kubernetes.io/enforce` label picks the
level; a pod that breaks a control of that level is rejected at admission, so a workload object that
holds such a pod template never starts a pod. Windows-only exemptions are not modelled: meshstack runs
Linux nodes only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from meshstack.policies.rule import as_list, as_map, get, integer, text

Level = Literal["privileged", "baseline", "restricted"]
LEVELS: tuple[Level, ...] = ("privileged", "baseline", "restricted")
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
CONTAINER_KEYS = ("initContainers", "containers", "ephemeralContainers")

BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
RESTRICTED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
RESTRICTED_VOLUME_SOURCES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
)
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


@dataclass(frozen=True)
class Breach:
    """One control a pod fails, named as the standard names it, with where it fails."""

    control: str
    detail: str

    def __str__(self) -> str:
        return f"{self.control} ({self.detail})"


def _port(value: object) -> str:
    """A port as written: the wire carries numbers as doubles (8080.0), a program may send anything."""
    number = integer(value)
    return str(number) if number is not None else text(value)


def containers(
    pod: Mapping[str, Any], keys: tuple[str, ...] = CONTAINER_KEYS
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(list key, container) for every container of a pod spec, init and ephemeral ones included."""
    for key in keys:
        for c in as_list(pod.get(key)):
            if isinstance(c, Mapping):
                yield key, c


def _containers(pod: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key, c in containers(pod):
        yield f"{key[:-1]} {c.get('name', '?')}", c


def _contexts(pod: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The pod's security context, then every container's."""
    yield "pod", as_map(get(pod, "securityContext"))
    for where, c in _containers(pod):
        yield where, as_map(get(c, "securityContext"))


Pod = Mapping[str, Any]
Annotations = Mapping[str, Any]
Check = Callable[[Pod, Annotations], Iterator[Breach]]


def _host_process(pod: Pod, _annotations: Annotations) -> Iterator[Breach]:
    for where, ctx in _contexts(pod):
        if get(ctx, "windowsOptions", "hostProcess") is True:
            yield Breach("HostProcess", f"{where}: windowsOptions.hostProcess: true")


def _host_namespaces(pod: Pod, _annotations: Annotations) -> Iterator[Breach]:
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key) is True:
            yield Breach("Host Namespaces", f"{key}: true")


def _privileged(pod: Pod, _annotations: Annotations) -> Iterator[Breach]:
    for where, c in _containers(pod):
        if get(c, "securityContext", "privileged") is True:
            yield Breach("Privileged Containers", f"{where}: privileged: true")


def _added_capabilities(container: Mapping[str, Any]) -> set[str]:
    return {text(a) for a in as_list(get(container, "securityContext", "capabilities", "add"))}


def _baseline_capabilities(pod: Pod, _annotations: Annotations) -> Iterator[Breach]:
    for where, c in _containers(pod):
        added = sorted(_added_capabilities(c) - BASELINE_CAPABILITIES)
        if added:
            yield Breach("Capabilities", f"{where} adds {', '.join(added)}")


def _host_ports(pod: Pod, _annotations: Annotations) -> Iterator[Breach]:
    for where, c in _containers(pod):
        for port in as_list(c.get("ports")):
            host = get(port, "hostPort")
            if host not in (None, 0):
                yield Breach("Host Ports", f"{where}: hostPort {_port(host)}")


def _proc_mount(pod: Pod, _annotations: Annotations) -> Iterator[Breach]:
    for where, c in _containers(pod):
        mount = get(c, "securityContext", "procMount")
        if mount not in (None, "Default"):
            yield Breach("/proc Mount Type", f"{where}: procMount {mount}")


def _host_path(pod: Pod, _annotations: Annotations) -> Iterator[Breach]:
    for volume in as_list(pod.get("volumes")):
        if isinstance(volume, Mapping) and volume.get("hostPath") is not None:
            yield Breach("HostPath Volumes", f"volume {volume.get('name')}: hostPath {get(volume, 'hostPath', 'path')}")


def _apparmor(pod: Pod, annotations: Annotations) -> Iterator[Breach]:
    for where, ctx in _contexts(pod):
        profile = get(ctx, "appArmorProfile", "type")
        if profile not in (None, "RuntimeDefault", "Localhost"):
            yield Breach("AppArmor", f"{where}: appArmorProfile {profile}")
    for key, value in annotations.items():
        if str(key).startswith(APPARMOR_ANNOTATION) and not (
            value == "runtime/default" or str(value).startswith("localhost/")
        ):
            yield Breach("AppArmor", f"annotation {key}: {value}")


def _selinux(pod: Pod, _annotations: Annotations) -> Iterator[Breach]:
    for where, ctx in _contexts(pod):
        selinux = as_map(get(ctx, "seLinuxOptions"))
        if str(selinux.get("type") or "") not in SELINUX_TYPES:
            yield Breach("SELinux", f"{where}: seLinuxOptions.type {selinux.get('type')}")
        if selinux.get("user") or selinux.get("role"):
            yield Breach("SELinux", f"{where}: seLinuxOptions sets user or role")


def _seccomp_not_unconfined(pod: Pod, _annotations: Annotations) -> Iterator[Breach]:
    for where, ctx in _contexts(pod):
        if get(ctx, "seccompProfile", "type") == "Unconfined":
            yield Breach("Seccomp", f"{where}: seccompProfile Unconfined")


def _sysctls(pod: Pod, _annotations: Annotations) -> Iterator[Breach]:
    for sysctl in as_list(get(pod, "securityContext", "sysctls")):
        if text(get(sysctl, "name")) not in SAFE_SYSCTLS:
            yield Breach("Sysctls", f"sysctl {get(sysctl, 'name')}")


def _volume_types(pod: Pod, _annotations: Annotations) -> Iterator[Breach]:
    for volume in as_list(pod.get("volumes")):
        if not isinstance(volume, Mapping):
            continue
        sources = sorted(k for k in volume if k != "name")
        if any(s not in RESTRICTED_VOLUME_SOURCES for s in sources):
            yield Breach("Volume Types", f"volume {volume.get('name')}: {', '.join(sources)}")


def _privilege_escalation(pod: Pod, _annotations: Annotations) -> Iterator[Breach]:
    for where, c in _containers(pod):
        if get(c, "securityContext", "allowPrivilegeEscalation") is not False:
            yield Breach("Privilege Escalation", f"{where}: allowPrivilegeEscalation is not false")


def _non_root(pod: Pod, _annotations: Annotations) -> Iterator[Breach]:
    pod_non_root = get(pod, "securityContext", "runAsNonRoot")
    if pod_non_root is False:
        yield Breach("Running as Non-root", "pod: runAsNonRoot: false")
    for where, c in _containers(pod):
        non_root = get(c, "securityContext", "runAsNonRoot")
        if non_root is False or (non_root is None and pod_non_root is not True):
            yield Breach("Running as Non-root", f"{where}: runAsNonRoot is not true (nor set on the pod)")


def _non_root_user(pod: Pod, _annotations: Annotations) -> Iterator[Breach]:
    for where, ctx in _contexts(pod):
        if ctx.get("runAsUser") == 0:
            yield Breach("Running as Non-root user", f"{where}: runAsUser: 0")


def _seccomp_set(pod: Pod, _annotations: Annotations) -> Iterator[Breach]:
    allowed = ("RuntimeDefault", "Localhost")
    pod_profile = get(pod, "securityContext", "seccompProfile", "type")
    for where, c in _containers(pod):
        profile = get(c, "securityContext", "seccompProfile", "type")
        if profile not in allowed and not (profile is None and pod_profile in allowed):
            yield Breach("Seccomp", f"{where}: seccompProfile is not RuntimeDefault or Localhost")


def _restricted_capabilities(pod: Pod, _annotations: Annotations) -> Iterator[Breach]:
    for where, c in _containers(pod):
        if "ALL" not in {text(d) for d in as_list(get(c, "securityContext", "capabilities", "drop"))}:
            yield Breach("Capabilities", f"{where} does not drop ALL")
        added = sorted(_added_capabilities(c) - RESTRICTED_CAPABILITIES)
        if added:
            yield Breach("Capabilities", f"{where} adds {', '.join(added)} (restricted allows NET_BIND_SERVICE only)")


# The standard's controls in its own order, each at the lowest level that has it (restricted includes
# baseline): one function per control, so a control added to the standard is one row here.
CONTROLS: tuple[tuple[Level, Check], ...] = (
    ("baseline", _host_process),
    ("baseline", _host_namespaces),
    ("baseline", _privileged),
    ("baseline", _baseline_capabilities),
    ("baseline", _host_path),
    ("baseline", _host_ports),
    ("baseline", _apparmor),
    ("baseline", _selinux),
    ("baseline", _proc_mount),
    ("baseline", _seccomp_not_unconfined),
    ("baseline", _sysctls),
    ("restricted", _volume_types),
    ("restricted", _privilege_escalation),
    ("restricted", _non_root),
    ("restricted", _non_root_user),
    ("restricted", _seccomp_set),
    ("restricted", _restricted_capabilities),
)


def breaches(pod: Pod, level: Level, annotations: Annotations | None = None) -> list[Breach]:
    """Every control of `level` (restricted includes baseline) that this pod spec fails."""
    applied = LEVELS[1 : LEVELS.index(level) + 1]
    found: list[Breach] = []
    for control_level, check in CONTROLS:
        if control_level in applied:
            found += [b for b in check(pod, as_map(annotations)) if b not in found]
    return found


def namespace_level(labels: Mapping[str, Any] | None, default: Level) -> Level:
    value = text(as_map(labels).get(ENFORCE_LABEL, default))
    return value if value in LEVELS else default
