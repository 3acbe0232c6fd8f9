"""A cluster's dashboards and alert rules as Kubernetes objects, from meshstack.core.observability.

On EKS the Prometheus Operator (kube-prometheus-stack) evaluates a PrometheusRule and its Grafana
sidecar loads every ConfigMap labelled `grafana_dashboard`; on GKE, Managed Service for Prometheus
evaluates ClusterRules (every namespace's series), and the dashboard is a Cloud Monitoring one
(meshstack.components.gcp.dashboard), not an object in the cluster.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from meshstack.core.observability import (
    NODE_HEALTH_PANELS,
    SERVING_PANELS,
    TRAINING_PANELS,
    AlertSpec,
    Panel,
    accelerator_panels,
    alerts,
    health_panels,
)

NAMESPACE = "monitoring"  # kube-prometheus-stack's release namespace
DASHBOARD_LABEL = "grafana_dashboard"  # what the chart's Grafana sidecar looks for (its default)
RULES_NAME = "meshstack-alerts"
GROUP = "meshstack"

# kube-prometheus-stack: Prometheus finding every PodMonitor, ServiceMonitor and PrometheusRule in the
# cluster (the chart's defaults select only its own), Alertmanager, Grafana loading dashboards from
# ConfigMaps in any namespace, and kube-state-metrics exposing the node-pool label for the alerts.
NODE_POOL_LABELS = ["nodes=[meshstack.io/node-pool]"]  # kube-state-metrics: kube_node_labels carries the pool
PROMETHEUS_VALUES: dict[str, Any] = {
    "alertmanager": {"enabled": True},
    "grafana": {
        "enabled": True,
        "sidecar": {"dashboards": {"enabled": True, "label": DASHBOARD_LABEL, "searchNamespace": "ALL"}},
    },
    "kube-state-metrics": {"metricLabelsAllowlist": NODE_POOL_LABELS},
    "prometheus": {
        "prometheusSpec": {
            "podMonitorSelectorNilUsesHelmValues": False,
            "serviceMonitorSelectorNilUsesHelmValues": False,
            "ruleSelectorNilUsesHelmValues": False,
        }
    },
}


def rule_groups(spec: AlertSpec, vendors: set[str], training_pools: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {"name": GROUP, "interval": "30s", "rules": [a.rule() for a in alerts(spec, vendors, list(training_pools))]}
    ]


def rules_object(spec: AlertSpec, vendors: set[str], training_pools: Sequence[str], operator: bool) -> dict[str, Any]:
    """A PrometheusRule for the Prometheus Operator, or GKE's ClusterRules for Managed Prometheus."""
    groups = rule_groups(spec, vendors, training_pools)
    if operator:
        return {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": RULES_NAME, "namespace": NAMESPACE},
            "spec": {"groups": groups},
        }
    return {
        "apiVersion": "monitoring.googleapis.com/v1",
        "kind": "ClusterRules",
        "metadata": {"name": RULES_NAME},
        "spec": {"groups": groups},
    }


def grafana_dashboard(title: str, sections: Sequence[tuple[str, Sequence[Panel]]]) -> dict[str, Any]:
    """A Grafana dashboard (schema 39): a row per section, a time-series panel per query."""
    panels: list[dict[str, Any]] = []
    y = 0
    for section, chosen in sections:
        panels.append(
            {"type": "row", "title": section, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "id": len(panels) + 1}
        )
        y += 1
        for i, panel in enumerate(chosen):
            panels.append(
                {
                    "id": len(panels) + 1,
                    "type": "timeseries",
                    "title": panel.title,
                    "datasource": {"type": "prometheus", "uid": "prometheus"},
                    "targets": [{"refId": "A", "expr": panel.expr, "legendFormat": "__auto"}],
                    "fieldConfig": {"defaults": {"unit": _grafana_unit(panel.unit)}, "overrides": []},
                    "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": y + 8 * (i // 2)},
                }
            )
        y += 8 * ((len(chosen) + 1) // 2)
    return {
        "title": title,
        "uid": "meshstack-platform",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "tags": ["meshstack"],
        "panels": panels,
    }


def _grafana_unit(unit: str) -> str:
    return {"s": "s", "%": "percent", "ratio": "percentunit"}.get(unit, "short")


def dashboard_sections(vendors: set[str]) -> list[tuple[str, Sequence[Panel]]]:
    sections: list[tuple[str, Sequence[Panel]]] = [("Training", TRAINING_PANELS), ("Serving", SERVING_PANELS)]
    chosen = accelerator_panels(vendors)
    if chosen:
        sections.append(("Accelerators", chosen))
    health = (*NODE_HEALTH_PANELS, *health_panels(vendors))
    sections.append(("Node health and repair", health))
    return sections


def dashboard_config_map(vendors: set[str]) -> dict[str, Any]:
    """The dashboard as the Grafana sidecar picks it up."""
    body = grafana_dashboard("meshstack: training, serving, accelerators", dashboard_sections(vendors))
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "meshstack-dashboard", "namespace": NAMESPACE, "labels": {DASHBOARD_LABEL: "1"}},
        "data": {"meshstack.json": json.dumps(body, indent=1, sort_keys=True)},
    }


# Where the cloud's Prometheus has no node state (GKE's managed kube state metrics cover no nodes): a
# kube-state-metrics with the node collector alone, and Managed Prometheus' scrape of it.
NODE_STATE_VALUES: dict[str, Any] = {"collectors": ["nodes"], "metricLabelsAllowlist": NODE_POOL_LABELS}


def node_state_scrape(namespace: str) -> dict[str, Any]:
    """GMP's PodMonitoring of the kube-state-metrics chart's pods, on the chart's `http` port
    (prometheus-community kube-state-metrics 6.4.1: templates/_helpers.tpl, templates/deployment.yaml)."""
    return {
        "apiVersion": "monitoring.googleapis.com/v1",
        "kind": "PodMonitoring",
        "metadata": {"name": "kube-state-metrics", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "kube-state-metrics"}},
            "endpoints": [{"port": "http", "interval": "30s"}],
        },
    }
