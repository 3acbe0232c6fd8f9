"""What the pack and checkov both judge on a workload manifest, and the pack config the two are compared
under: the oracle test over the shipped stacks and the one over checkov's own fixtures share them."""

from __future__ import annotations

# concept -> (checkov checks, (meshstack rule id, a fragment of its message)): a failure of any one of the
# checks counts for checkov; a violation of that rule whose message holds the fragment counts for the pack.
CONCEPTS: dict[str, tuple[set[str], tuple[str, str]]] = {
    "privileged container": ({"CKV_K8S_16"}, ("MS-K8S-002", "runs privileged")),
    "host PID namespace": ({"CKV_K8S_17"}, ("MS-K8S-003", "hostPID")),
    "host IPC namespace": ({"CKV_K8S_18"}, ("MS-K8S-003", "hostIPC")),
    "host network namespace": ({"CKV_K8S_19"}, ("MS-K8S-003", "hostNetwork")),
    "privilege escalation": ({"CKV_K8S_20"}, ("MS-K8S-005", "allowPrivilegeEscalation")),
    "root user": ({"CKV_K8S_23"}, ("MS-K8S-004", "may run as root")),
    "added capabilities": ({"CKV_K8S_25", "CKV_K8S_39"}, ("MS-K8S-006", "adds capabilities")),
    "host port": ({"CKV_K8S_26"}, ("MS-K8S-011", "hostPort")),
    "hostPath volume": ({"CKV_K8S_27"}, ("MS-K8S-010", "mounts the node's")),
    "resource limits": ({"CKV_K8S_11", "CKV_K8S_13"}, ("MS-K8S-009", "sets no limit")),
    "image tag fixed": ({"CKV_K8S_14"}, ("MS-K8S-008", "has no fixed tag")),
    "image digest": ({"CKV_K8S_43"}, ("MS-K8S-007", "not pinned by digest")),
    "seccomp profile": ({"CKV_K8S_31"}, ("MS-K8S-001", "Seccomp (")),
}
# The pack's config for the comparison: the production stacks' (digests required).
PACK_CONFIG = {"pod-images-allowed": {"require_digest": True}}
