"""An inference server (meshstack's, vLLM or the user's own) as a Deployment behind a Service, scaled by
KEDA on the requests it holds and protected by a PDB."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from meshstack.workloads.k8s.metrics import MetricsBackend
from meshstack.workloads.k8s.objects import CustomObject
from meshstack.workloads.k8s.pod import security_context
from meshstack.workloads.k8s.workload_base import WorkloadArgs, waits_for, workload_base

SCALE_DOWN_WINDOW_S = 300  # a replica holds a model in accelerator memory: slow to start, so slow to drop
STARTUP_PERIOD_S = 10
# What pulumi-kubernetes reads on a Deployment or Service to skip, or bound, its readiness await.
SKIP_AWAIT = "pulumi.com/skipAwait"
AWAIT_TIMEOUT = "pulumi.com/timeoutSeconds"
AWAIT_MARGIN_S = 600
TOKEN_LENGTH = 48  # beyond the startup budget, for the image pull and the node to come up


def probe(path: str, period: int, failures: int, timeout: int = 1) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
    }


@dataclass(frozen=True, kw_only=True)
class ServerContainer:
    """What the engine runs and how Kubernetes tells it is up.

    `command` empty keeps the image's entry point. `startup_seconds` bounds loading and
    compiling (the startup probe); `in_flight_metrics` are the gauges whose sum is the requests a
    replica holds (KEDA's target), read from `metrics_path`. `await_ready` false is for a server
    that waits for weights this same `up` starts making (a training job's checkpoint): Pulumi
    must not wait for it to be ready, or the `up` fails after its timeout."""

    command: Sequence[pulumi.Input[str]] = ()
    args: pulumi.Input[Sequence[pulumi.Input[str]]] = ()
    env: Sequence[Mapping[str, Any]] = ()
    port: int = 8080
    health_path: str = "/healthz"
    ready_path: str = "/readyz"
    metrics_path: str | None = "/metrics"
    in_flight_metrics: Sequence[str] = ()
    startup_seconds: int = 600
    await_ready: bool = True


@dataclass(frozen=True, kw_only=True)
class InferenceServiceArgs(WorkloadArgs):
    """An inference service: replicas between the bounds, as many as keep `target_in_flight` requests in
    flight on each."""

    server: ServerContainer = field(default_factory=ServerContainer)
    """What the engine runs and how Kubernetes tells it is up (command, port, probes, metrics)."""
    min_replicas: int = 1
    """Replicas kept however idle."""
    max_replicas: int = 2
    """Replicas KEDA may scale up to."""
    target_in_flight: int = 8
    """Requests in flight per replica KEDA scales towards."""
    metrics: MetricsBackend = field(default_factory=MetricsBackend.operator)
    """Where the cluster's Prometheus lives, which KEDA queries and which scrapes the server."""
    client_namespaces: Sequence[str] = ()
    """Namespaces whose pods the NetworkPolicy admits besides the service's own."""
    client_labels: Mapping[str, str] = field(default_factory=dict)
    """Labels a calling pod must carry (in its own namespace and those)."""
    token_secret: str | None = None
    """The Secret (key 'token') whose value the server's callers must present as a bearer token."""
    drain_seconds: float = 25
    """How long the server drains in-flight requests after SIGTERM."""


def network_policy(args: InferenceServiceArgs, meta: dict[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    """Ingress to the server's port only from its own namespace's pods, the namespaces named (pods
    with `client_labels` where given) and the metrics scraper; everything else is dropped."""
    pods = {"podSelector": {"matchLabels": dict(args.client_labels)}} if args.client_labels else {}
    peers: list[dict[str, Any]] = [{"podSelector": {"matchLabels": dict(args.client_labels)}}]
    if args.client_namespaces:
        names = {"key": "kubernetes.io/metadata.name", "operator": "In", "values": sorted(args.client_namespaces)}
        peers.append({"namespaceSelector": {"matchExpressions": [names]}, **pods})
    scraper = {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [args.metrics.scraper_namespace]}
    port = [{"protocol": "TCP", "port": args.server.port}]
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


def in_flight_query(args: InferenceServiceArgs) -> str:
    """The requests the service's replicas hold, over every gauge the engine splits them into."""
    matchers = args.metrics.matchers(args.namespace, args.name)
    return " + ".join(f"sum({metric}{matchers})" for metric in args.server.in_flight_metrics)


def scaled_object(args: InferenceServiceArgs, meta: dict[str, Any], auth: str | None) -> dict[str, Any]:
    """KEDA scales on what a replica is loaded with, not on CPU: a server waiting on its accelerator
    is idle to the CPU metric while its queue grows. KEDA owns the replica count (and the HPA it
    makes), so the Deployment states none."""
    query = in_flight_query(args)
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
    """Deployment, ClusterIP Service, the scrape of its metrics (PodMonitor or GKE PodMonitoring),
    a KEDA ScaledObject on its requests in flight (a fixed replica count where the server reports
    none), and a PodDisruptionBudget.

    The startup probe covers loading and compiling; readiness follows the server's ready path,
    which for meshstack's server turns false the moment it starts draining, so a rolling update or
    scale-down stops sending traffic before the pod finishes its in-flight requests and exits; one
    slow probe alone does not take a replica out.
    """

    def __init__(
        self,
        name: str,
        args: InferenceServiceArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("meshstack:workloads:InferenceService", name, None, opts)
        placement, server = args.placement, args.server
        child = pulumi.ResourceOptions(parent=self, depends_on=waits_for(opts))
        base = workload_base(name, args, child)
        labels = base.labels
        meta = {"name": args.name, "namespace": args.namespace, "labels": labels}
        # Pulumi waits for a Deployment to be Available and a Service to have endpoints (10 minutes by
        # default): long enough a wait for a server loading its weights, none for one whose weights
        # this `up` only starts to produce.
        if server.await_ready:
            await_how = {AWAIT_TIMEOUT: str(server.startup_seconds + AWAIT_MARGIN_S)}
        else:
            await_how = {SKIP_AWAIT: "true"}
        awaited_meta = {**meta, "annotations": await_how}
        container: dict[str, Any] = {
            "name": "serve",
            "image": args.image,
            "env": list(server.env),
            "ports": [{"name": "http", "containerPort": server.port}],
            "resources": placement.resources(),
            "securityContext": security_context(),
            "startupProbe": probe(
                server.health_path, STARTUP_PERIOD_S, math.ceil(server.startup_seconds / STARTUP_PERIOD_S)
            ),
            "livenessProbe": probe(server.health_path, 10, 3),
            "readinessProbe": probe(server.ready_path, 5, 2, timeout=2),
            "volumeMounts": base.mounts,
        }
        if server.command:
            container["command"] = list(server.command)
        if server.args:
            container["args"] = server.args
        scaled = bool(server.in_flight_metrics)
        self.token: pulumi.Output[str] | None = None
        after = child
        if args.token_secret is not None:
            secret = self._token(name, args, meta, child)
            after = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[secret]))
        self.deployment = k8s.apps.v1.Deployment(
            name,
            metadata=awaited_meta,
            spec={
                **({} if scaled else {"replicas": args.min_replicas}),
                "selector": {"matchLabels": labels},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": args.name,
                        # The server drains for drain_seconds after SIGTERM; the pod waits a little longer.
                        "terminationGracePeriodSeconds": int(args.drain_seconds) + 15,
                        "nodeSelector": placement.node_selector(),
                        "tolerations": placement.tolerations(),
                        "securityContext": {"runAsNonRoot": True, "fsGroup": 1000},
                        "containers": [container],
                        "volumes": base.volumes,
                    },
                },
            },
            opts=after,
        )
        k8s.core.v1.Service(
            name,
            metadata=awaited_meta,
            spec={
                "type": "ClusterIP",
                "selector": labels,
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
            opts=child,
        )
        if server.metrics_path is not None:
            monitor = args.metrics.pod_monitor(args.name, args.namespace, labels, "http", server.metrics_path)
            CustomObject(name, monitor, child)
        if scaled:
            self._autoscale(name, args, meta, labels, child)
        k8s.networking.v1.NetworkPolicy(name, **network_policy(args, meta, labels), opts=child)
        k8s.policy.v1.PodDisruptionBudget(name, metadata=meta, spec=disruption_budget(args, labels), opts=child)
        self.register_outputs({"service": f"{args.name}.{args.namespace}.svc.cluster.local", "token": self.token})

    def _token(
        self, name: str, args: InferenceServiceArgs, meta: dict[str, Any], child: pulumi.ResourceOptions
    ) -> k8s.core.v1.Secret:
        """The callers' bearer token: a random value the stack keeps as a secret (`pulumi stack output
        --show-secrets`), in the Secret the server reads it from. Created by the stack, so the first
        `up` has it before the server starts; it changes only when the resource is replaced."""
        password = random.RandomPassword(
            f"{name}-token", length=TOKEN_LENGTH, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        self.token = pulumi.Output.secret(password.result)
        return k8s.core.v1.Secret(
            f"{name}-token",
            metadata={**meta, "name": args.token_secret},
            type="Opaque",
            string_data={"token": password.result},
            opts=child,
        )

    def _autoscale(
        self,
        name: str,
        args: InferenceServiceArgs,
        meta: dict[str, Any],
        labels: Mapping[str, str],
        child: pulumi.ResourceOptions,
    ) -> None:
        auth = None
        identity = args.metrics.pod_identity()
        if identity is not None:
            auth = f"{args.name}-prometheus"
            CustomObject(
                f"{name}-prometheus",
                {
                    "apiVersion": "keda.sh/v1alpha1",
                    "kind": "TriggerAuthentication",
                    "metadata": {"name": auth, "namespace": args.namespace, "labels": dict(labels)},
                    "spec": {"podIdentity": {"provider": identity}},
                },
                child,
            )
        CustomObject(name, scaled_object(args, meta, auth), child)


def disruption_budget(args: InferenceServiceArgs, labels: Mapping[str, str]) -> dict[str, Any]:
    """Voluntary evictions (node drains, upgrades) take one replica at a time. With one replica a
    `minAvailable: 1` would refuse every eviction and fail node-group updates, so a one-replica
    service accepts the short outage of its move instead."""
    selector = {"matchLabels": dict(labels)}
    if args.min_replicas == 1:
        return {"maxUnavailable": 1, "selector": selector}
    return {"minAvailable": args.min_replicas - 1, "selector": selector}
