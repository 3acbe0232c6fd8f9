"""The inference server as a Deployment behind a Service, scaled by an HPA and protected by a PDB."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from meshstack.core.contract import JOB_CONFIG_ENV
from meshstack.core.spec import InferenceWorkload
from workloads.k8s.pod import security_context
from workloads.k8s.workload_base import Target, workload_base


def probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "failureThreshold": failures}


class InferenceService(pulumi.ComponentResource):
    """Deployment, ClusterIP Service, HorizontalPodAutoscaler and PodDisruptionBudget.

    Readiness follows /readyz, which turns false the moment the server starts
    draining, so a rolling update or scale-down stops sending traffic before the
    pod finishes its in-flight requests and exits.
    """

    def __init__(
        self,
        name: str,
        workload: InferenceWorkload,
        target: Target,
        job_config: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("meshstack:workloads:InferenceService", name, None, opts)
        placement = target.placement
        child = pulumi.ResourceOptions(parent=self, provider=target.provider, depends_on=target.depends_on)
        base = workload_base(name, workload, target, child)
        labels = base.labels
        meta = {"name": workload.name, "namespace": workload.namespace, "labels": labels}
        port = workload.serve.port
        self.deployment = k8s.apps.v1.Deployment(
            name,
            metadata=meta,
            spec={
                "replicas": workload.min_replicas,
                "selector": {"matchLabels": labels},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": workload.name,
                        "terminationGracePeriodSeconds": 60,
                        "nodeSelector": placement.node_selector(),
                        "tolerations": placement.tolerations(),
                        "securityContext": {"runAsNonRoot": True, "fsGroup": 1000},
                        "containers": [
                            {
                                "name": "serve",
                                "image": workload.image,
                                "command": ["python", "-m", "workloads.jax.serve"],
                                "env": [{"name": JOB_CONFIG_ENV, "value": job_config}],
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
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload.name},
                "minReplicas": workload.min_replicas,
                "maxReplicas": workload.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": workload.target_cpu_utilization},
                        },
                    }
                ],
            },
            opts=child,
        )
        k8s.policy.v1.PodDisruptionBudget(
            name, metadata=meta, spec={"maxUnavailable": 1, "selector": {"matchLabels": labels}}, opts=child
        )
        self.register_outputs({"service": f"{workload.name}.{workload.namespace}.svc.cluster.local"})
