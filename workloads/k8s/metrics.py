"""Where a cluster's Prometheus scrapes pods and answers queries: the Prometheus Operator inside the
cluster (EKS), or Google Cloud Managed Service for Prometheus (GKE), which differ in the object that
asks for a scrape, in where queries go and in how KEDA authenticates to them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

# kube-prometheus-stack released as "kube-prometheus-stack" in "monitoring" names its service so.
OPERATOR_QUERY_URL = "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"
GMP_QUERY_URL = "https://monitoring.googleapis.com/v1/projects/{project}/location/global/prometheus"
SCRAPE_INTERVAL = "15s"


@dataclass(frozen=True)
class MetricsBackend:
    """`cluster` is set where one Prometheus holds several clusters' series (GMP is per project)."""

    kind: Literal["prometheus-operator", "gke-managed"]
    query_url: str
    cluster: str | None = None

    @property
    def scraper_namespace(self) -> str:
        """Where the scraping pods run: kube-prometheus-stack's release namespace, or GMP's collectors."""
        return "monitoring" if self.kind == "prometheus-operator" else "gmp-system"

    @classmethod
    def operator(cls) -> MetricsBackend:
        return cls("prometheus-operator", OPERATOR_QUERY_URL)

    @classmethod
    def gke_managed(cls, project: str, cluster: str) -> MetricsBackend:
        return cls("gke-managed", GMP_QUERY_URL.format(project=project), cluster)

    def pod_monitor(
        self, name: str, namespace: str, labels: Mapping[str, str], port: str, path: str = "/metrics"
    ) -> dict[str, Any]:
        """The object that makes the backend scrape the pods carrying `labels` on their `port`."""
        meta = {"name": name, "namespace": namespace, "labels": dict(labels)}
        selector = {"matchLabels": dict(labels)}
        endpoint = {"port": port, "path": path, "interval": SCRAPE_INTERVAL}
        if self.kind == "prometheus-operator":
            return {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PodMonitor",
                "metadata": meta,
                "spec": {"selector": selector, "podMetricsEndpoints": [endpoint]},
            }
        return {
            "apiVersion": "monitoring.googleapis.com/v1",
            "kind": "PodMonitoring",
            "metadata": meta,
            "spec": {"selector": selector, "endpoints": [endpoint]},
        }

    def matchers(self, namespace: str, deployment: str) -> str:
        """PromQL label matchers for a Deployment's pods (named <deployment>-<replicaset>-<pod>)."""
        parts = [f'namespace="{namespace}"', f'pod=~"{deployment}-[a-z0-9]+-[a-z0-9]+"']
        if self.cluster is not None:
            parts.insert(0, f'cluster="{self.cluster}"')
        return "{" + ",".join(parts) + "}"

    def pod_identity(self) -> str | None:
        """GMP's query API takes Google credentials: KEDA gets them from its own Workload Identity."""
        return "gcp" if self.kind == "gke-managed" else None
