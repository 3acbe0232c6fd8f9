"""The inference server as a Deployment behind a Service, scaled by an HPA and protected by a PDB."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from meshstack.core.contract import JOB_CONFIG_ENV
from workloads.k8s.pod import security_context
from workloads.k8s.workload_base import WorkloadArgs, waits_for, workload_base


def probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "failureThreshold": failures}


@dataclass(frozen=True, kw_only=True)
class InferenceServiceArgs(WorkloadArgs):
    """Replicas between the bounds, scaled on CPU; the server listens on `port`."""

    port: int = 8080
    min_replicas: int = 1
    max_replicas: int = 2
    target_cpu_utilization: int = 70


class InferenceService(pulumi.ComponentResource):
    """Deployment, ClusterIP Service, HorizontalPodAutoscaler and PodDisruptionBudget.

    Readiness follows /readyz, which turns false the moment the server starts
    draining, so a rolling update or scale-down stops sending traffic before the
    pod finishes its in-flight requests and exits.
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
                "replicas": args.min_replicas,
                "selector": {"matchLabels": labels},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": args.name,
                        "terminationGracePeriodSeconds": 60,
                        "nodeSelector": placement.node_selector(),
                        "tolerations": placement.tolerations(),
                        "securityContext": {"runAsNonRoot": True, "fsGroup": 1000},
                        "containers": [
                            {
                                "name": "serve",
                                "image": args.image,
                                "command": ["python", "-m", "workloads.jax.serve"],
                                "env": [{"name": JOB_CONFIG_ENV, "value": args.job_config}],
                                "ports": [{"name": "http", "containerPort": port}],
                                "resources": placement.resources(),
                                "securityContext": security_context(),
                                "startupProbe": probe("/healthz", 5, 60),
                                "livenessProbe": probe("/healthz", 10, 3),
                                "readinessProbe": probe("/readyz", 5, 1),
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
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            name,
            metadata=meta,
            spec={
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": args.name},
                "minReplicas": args.min_replicas,
                "maxReplicas": args.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": args.target_cpu_utilization},
                        },
                    }
                ],
            },
            opts=child,
        )
        k8s.policy.v1.PodDisruptionBudget(
            name, metadata=meta, spec={"maxUnavailable": 1, "selector": {"matchLabels": labels}}, opts=child
        )
        self.register_outputs({"service": f"{args.name}.{args.namespace}.svc.cluster.local"})
