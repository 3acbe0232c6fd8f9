"""The Pod Security Standards, control by control, as the pod-security admission controller applies them.

Source: https://kubernetes.io/docs/concepts/security/pod-security-standards/ (the policy for the latest
Kubernetes minor, read 2026-11-25). A namespace's `pod-security.kubernetes.io/enforce` label picks the
level; a pod that breaks a control of that level is rejected at admission, so a workload object that
holds such a pod template never starts a pod. Windows-only exemptions are not modelled: meshstack runs
Linux nodes only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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


def _baseline(pod: Mapping[str, Any], annotations: Mapping[str, Any]) -> Iterator[Breach]:
    for where, ctx in _contexts(pod):
        if get(ctx, "windowsOptions", "hostProcess") is True:
            yield Breach("HostProcess", f"{where}: windowsOptions.hostProcess: true")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key) is True:
            yield Breach("Host Namespaces", f"{key}: true")
    for where, c in _containers(pod):
        ctx = as_map(get(c, "securityContext"))
        if ctx.get("privileged") is True:
            yield Breach("Privileged Containers", f"{where}: privileged: true")
        added = sorted({text(a) for a in as_list(get(ctx, "capabilities", "add"))} - BASELINE_CAPABILITIES)
        if added:
            yield Breach("Capabilities", f"{where} adds {', '.join(added)}")
        for port in as_list(c.get("ports")):
            host = get(port, "hostPort")
            if host not in (None, 0):
                yield Breach("Host Ports", f"{where}: hostPort {_port(host)}")
        if ctx.get("procMount") not in (None, "Default"):
            yield Breach("/proc Mount Type", f"{where}: procMount {ctx.get('procMount')}")
    for volume in as_list(pod.get("volumes")):
        if isinstance(volume, Mapping) and volume.get("hostPath") is not None:
            yield Breach("HostPath Volumes", f"volume {volume.get('name')}: hostPath {get(volume, 'hostPath', 'path')}")
    for where, ctx in _contexts(pod):
        apparmor = get(ctx, "appArmorProfile", "type")
        if apparmor not in (None, "RuntimeDefault", "Localhost"):
            yield Breach("AppArmor", f"{where}: appArmorProfile {apparmor}")
        selinux = as_map(get(ctx, "seLinuxOptions"))
        if str(selinux.get("type") or "") not in SELINUX_TYPES:
            yield Breach("SELinux", f"{where}: seLinuxOptions.type {selinux.get('type')}")
        if selinux.get("user") or selinux.get("role"):
            yield Breach("SELinux", f"{where}: seLinuxOptions sets user or role")
        if get(ctx, "seccompProfile", "type") == "Unconfined":
            yield Breach("Seccomp", f"{where}: seccompProfile Unconfined")
    for key, value in annotations.items():
        if str(key).startswith(APPARMOR_ANNOTATION) and not (
            value == "runtime/default" or str(value).startswith("localhost/")
        ):
            yield Breach("AppArmor", f"annotation {key}: {value}")
    for sysctl in as_list(get(pod, "securityContext", "sysctls")):
        if text(get(sysctl, "name")) not in SAFE_SYSCTLS:
            yield Breach("Sysctls", f"sysctl {get(sysctl, 'name')}")


def _restricted(pod: Mapping[str, Any]) -> Iterator[Breach]:
    for volume in as_list(pod.get("volumes")):
        if not isinstance(volume, Mapping):
            continue
        sources = sorted(k for k in volume if k != "name")
        if any(s not in RESTRICTED_VOLUME_SOURCES for s in sources):
            yield Breach("Volume Types", f"volume {volume.get('name')}: {', '.join(sources)}")
    pod_ctx = as_map(get(pod, "securityContext"))
    pod_non_root = pod_ctx.get("runAsNonRoot")
    pod_seccomp = get(pod_ctx, "seccompProfile", "type")
    if pod_non_root is False:
        yield Breach("Running as Non-root", "pod: runAsNonRoot: false")
    if pod_ctx.get("runAsUser") == 0:
        yield Breach("Running as Non-root user", "pod: runAsUser: 0")
    for where, c in _containers(pod):
        ctx = as_map(get(c, "securityContext"))
        if ctx.get("allowPrivilegeEscalation") is not False:
            yield Breach("Privilege Escalation", f"{where}: allowPrivilegeEscalation is not false")
        non_root = ctx.get("runAsNonRoot")
        if non_root is False or (non_root is None and pod_non_root is not True):
            yield Breach("Running as Non-root", f"{where}: runAsNonRoot is not true (nor set on the pod)")
        if ctx.get("runAsUser") == 0:
            yield Breach("Running as Non-root user", f"{where}: runAsUser: 0")
        seccomp = get(ctx, "seccompProfile", "type")
        if seccomp not in ("RuntimeDefault", "Localhost") and not (
            seccomp is None and pod_seccomp in ("RuntimeDefault", "Localhost")
        ):
            yield Breach("Seccomp", f"{where}: seccompProfile is not RuntimeDefault or Localhost")
        if "ALL" not in {text(d) for d in as_list(get(ctx, "capabilities", "drop"))}:
            yield Breach("Capabilities", f"{where} does not drop ALL")
        added = sorted({text(a) for a in as_list(get(ctx, "capabilities", "add"))} - RESTRICTED_CAPABILITIES)
        if added:
            yield Breach("Capabilities", f"{where} adds {', '.join(added)} (restricted allows NET_BIND_SERVICE only)")


def breaches(pod: Mapping[str, Any], level: Level, annotations: Mapping[str, Any] | None = None) -> list[Breach]:
    """Every control of `level` (restricted includes baseline) that this pod spec fails."""
    if level == "privileged":
        return []
    found = list(_baseline(pod, as_map(annotations)))
    if level == "restricted":
        found += [b for b in _restricted(pod) if b not in found]
    return found


def namespace_level(labels: Mapping[str, Any] | None, default: Level) -> Level:
    value = text(as_map(labels).get(ENFORCE_LABEL, default))
    return value if value in LEVELS else default
