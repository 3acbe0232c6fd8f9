"""The inference server as a Deployment behind a Service, scaled by KEDA on the requests it holds and
protected by a PDB."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from meshstack.core.contract import JOB_CONFIG_ENV, SERVE_TOKEN_ENV
from meshstack.core.observability import SERVE_IN_FLIGHT
from workloads.k8s.metrics import MetricsBackend
from workloads.k8s.objects import CustomObject
from workloads.k8s.pod import security_context
from workloads.k8s.workload_base import WorkloadArgs, waits_for, workload_base

SCALE_DOWN_WINDOW_S = 300  # a replica holds a model in accelerator memory: slow to start, so slow to drop


def probe(path: str, period: int, failures: int, timeout: int = 1) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
    }


@dataclass(frozen=True, kw_only=True)
class InferenceServiceArgs(WorkloadArgs):
    """Replicas between the bounds, as many as keep `target_in_flight` requests in flight on each;
    the server listens on `port`; `metrics` says where the cluster's Prometheus lives."""

    port: int = 8080
    min_replicas: int = 1
    max_replicas: int = 2
    target_in_flight: int = 8
    metrics: MetricsBackend = field(default_factory=MetricsBackend.operator)
    client_namespaces: Sequence[str] = ()
    client_labels: Mapping[str, str] = field(default_factory=dict)
    token_secret: str | None = None
    drain_seconds: float = 25  # the server's serve.drain_timeout_s


def network_policy(args: InferenceServiceArgs, meta: dict[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    """Ingress to the server's port only from its own namespace's pods, the namespaces named (pods
    with `client_labels` where given) and the metrics scraper; everything else is dropped."""
    pods = {"podSelector": {"matchLabels": dict(args.client_labels)}} if args.client_labels else {}
    peers: list[dict[str, Any]] = [{"podSelector": {"matchLabels": dict(args.client_labels)}}]
    if args.client_namespaces:
        names = {"key": "kubernetes.io/metadata.name", "operator": "In", "values": sorted(args.client_namespaces)}
        peers.append({"namespaceSelector": {"matchExpressions": [names]}, **pods})
    scraper = {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [args.metrics.scraper_namespace]}
    port = [{"protocol": "TCP", "port": args.port}]
    return {
        "metadata": meta,
        "spec": {
            "podSelector": {"matchLabels": dict(labels)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": peers, "ports": port},
                {"from": [{"namespaceSelector": {"matchExpressions": [scraper]}}], "ports": port},
            ],
        },
    }


def token_env(args: InferenceServiceArgs) -> list[dict[str, Any]]:
    if args.token_secret is None:
        return []
    source = {"secretKeyRef": {"name": args.token_secret, "key": "token"}}
    return [{"name": SERVE_TOKEN_ENV, "valueFrom": source}]


def scaled_object(args: InferenceServiceArgs, meta: dict[str, Any], auth: str | None) -> dict[str, Any]:
    """KEDA scales on what a replica is loaded with, not on CPU: a server waiting on its accelerator
    is idle to the CPU metric while its queue grows. KEDA owns the replica count (and the HPA it
    makes), so the Deployment states none."""
    query = f"sum({SERVE_IN_FLIGHT}{args.metrics.matchers(args.namespace, args.name)})"
    trigger: dict[str, Any] = {
        "type": "prometheus",
        "metricType": "AverageValue",
        "metadata": {"serverAddress": args.metrics.query_url, "query": query, "threshold": str(args.target_in_flight)},
    }
    if auth is not None:
        trigger["authenticationRef"] = {"name": auth}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": meta,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": args.name},
            "minReplicaCount": args.min_replicas,
            "maxReplicaCount": args.max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": SCALE_DOWN_WINDOW_S,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_WINDOW_S}}
                }
            },
            "triggers": [trigger],
        },
    }


class InferenceService(pulumi.ComponentResource):
    """Deployment, ClusterIP Service, the scrape of its /metrics (PodMonitor or GKE PodMonitoring),
    a KEDA ScaledObject on its requests in flight, and a PodDisruptionBudget keeping one replica.

    Readiness follows /readyz, which turns false the moment the server starts
    draining, so a rolling update or scale-down stops sending traffic before the
    pod finishes its in-flight requests and exits; one slow probe alone does not
    take a replica out.
    """

    def __init__(
        self,
        name: str,
        args: InferenceServiceArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("meshstack:workloads:InferenceService", name, None, opts)
        placement = args.placement
        child = pulumi.ResourceOptions(parent=self, depends_on=waits_for(opts))
        base = workload_base(name, args, child)
        labels = base.labels
        meta = {"name": args.name, "namespace": args.namespace, "labels": labels}
        port = args.port
        self.deployment = k8s.apps.v1.Deployment(
            name,
            metadata=meta,
            spec={
                "selector": {"matchLabels": labels},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": args.name,
                        # The server drains for drain_timeout_s after SIGTERM; the pod waits a little longer.
                        "terminationGracePeriodSeconds": int(args.drain_seconds) + 15,
                        "nodeSelector": placement.node_selector(),
                        "tolerations": placement.tolerations(),
                        "securityContext": {"runAsNonRoot": True, "fsGroup": 1000},
                        "containers": [
                            {
                                "name": "serve",
                                "image": args.image,
                                "command": ["python", "-m", "workloads.jax.serve"],
                                "env": [{"name": JOB_CONFIG_ENV, "value": args.job_config}, *token_env(args)],
                                "ports": [{"name": "http", "containerPort": port}],
                                "resources": placement.resources(),
                                "securityContext": security_context(),
                                "startupProbe": probe("/healthz", 5, 60),
                                "livenessProbe": probe("/healthz", 10, 3),
                                "readinessProbe": probe("/readyz", 5, 2, timeout=2),
                                "volumeMounts": base.mounts,
                            }
                        ],
                        "volumes": base.volumes,
                    },
                },
            },
            opts=child,
        )
        k8s.core.v1.Service(
            name,
            metadata=meta,
            spec={
                "type": "ClusterIP",
                "selector": labels,
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
            opts=child,
        )
        monitor = args.metrics.pod_monitor(args.name, args.namespace, labels, "http")
        CustomObject(name, monitor, child)
        auth = None
        identity = args.metrics.pod_identity()
        if identity is not None:
            auth = f"{args.name}-prometheus"
            CustomObject(
                f"{name}-prometheus",
                {
                    "apiVersion": "keda.sh/v1alpha1",
                    "kind": "TriggerAuthentication",
                    "metadata": {"name": auth, "namespace": args.namespace, "labels": labels},
                    "spec": {"podIdentity": {"provider": identity}},
                },
                child,
            )
        CustomObject(name, scaled_object(args, meta, auth), child)
        k8s.networking.v1.NetworkPolicy(name, **network_policy(args, meta, labels), opts=child)
        k8s.policy.v1.PodDisruptionBudget(
            name, metadata=meta, spec={"minAvailable": 1, "selector": {"matchLabels": labels}}, opts=child
        )
        self.register_outputs({"service": f"{args.name}.{args.namespace}.svc.cluster.local"})
