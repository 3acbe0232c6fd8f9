"""What a cluster needs before workloads can run on it, installed with Helm through the cluster's provider."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from meshstack.components.k8s.monitoring import (
    NODE_STATE_VALUES,
    PROMETHEUS_VALUES,
    dashboard_config_map,
    node_state_scrape,
    rules_object,
)
from meshstack.components.k8s.queues import QueueNeeds, queue_objects
from meshstack.core.kubernetes import AUTOSCALER_IMAGES
from meshstack.core.nodes import LABEL_ACCELERATOR, LABEL_POOL, NodePoolArgs
from meshstack.core.observability import AlertSpec
from meshstack.core.vendors import VENDORS
from meshstack.core.yaml_text import load_yaml
from meshstack.workloads.k8s.objects import CustomObject
from meshstack.workloads.k8s.workload_base import waits_for

CHARTS: dict[str, dict[str, Any]] = load_yaml(Path(__file__).with_name("charts.yaml").read_text())
AUTOSCALER_ACCOUNT = "cluster-autoscaler"


def autoscaler_values(
    kubernetes_version: str, extra: Mapping[str, Any], priorities: Mapping[int, Sequence[str]] | None = None
) -> dict[str, Any]:
    """The cluster-autoscaler's chart values: its image matches the cluster's minor version, and it
    packs pending pods onto the pool that wastes least. `extra` is the cloud's part (provider, identity).
    `priorities` (node group name patterns by priority) put the priority expander first: among the groups
    a pending pod fits, the highest-priority one grows, and one that fails to (no capacity) is backed off,
    so the next takes over. Groups no pattern names are never grown, so the lowest priority names all."""
    tag = AUTOSCALER_IMAGES.get(kubernetes_version)
    if tag is None:
        raise ValueError(
            f"no cluster-autoscaler image is pinned for Kubernetes {kubernetes_version}: "
            f"add it to meshstack/core/kubernetes_versions.yaml (pinned: {', '.join(AUTOSCALER_IMAGES)})"
        )
    ordered: dict[str, Any] = {}
    if priorities:
        # The chart writes a string as it is into the cluster-autoscaler-priority-expander ConfigMap; a map
        # would reach the autoscaler with quoted (string) priorities from the JSON values.
        ordered["expanderPriorities"] = "".join(
            f"{prio}:\n" + "".join(f"  - '{p}'\n" for p in patterns) for prio, patterns in sorted(priorities.items())
        )
    return {
        "image": {"tag": tag},
        "rbac": {"serviceAccount": {"create": True, "name": AUTOSCALER_ACCOUNT}},
        **ordered,
        "extraArgs": {
            "expander": "priority,least-waste" if priorities else "least-waste",
            "balance-similar-node-groups": True,
            "skip-nodes-with-system-pods": False,
            "scale-down-unneeded-time": "10m",
        },
        **extra,
    }


TOLERATE_ALL = [{"operator": "Exists"}]


def _value(values: Mapping[str, Any], path: str, default: Any) -> Any:
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def custom_resource_groups(key: str, values: Mapping[str, Any]) -> list[str]:
    """The API groups of the custom resources chart `key` renders with these values (charts.yaml's
    `renders_crs`: the value that turns each on, and its default in the pinned chart)."""
    renders: Mapping[str, Mapping[str, Any]] = CHARTS[key].get("renders_crs", {})
    return sorted(g for g, switch in renders.items() if _value(values, switch["value"], switch["default"]))


@dataclass(frozen=True)
class AddonNeeds:
    """What the stack's workloads and storage ask of a cluster beyond its node pools."""

    lustre: bool = False
    efs: bool = False
    namespaces: tuple[str, ...] = ()
    queues: QueueNeeds = field(default_factory=QueueNeeds)
    scaled_services: bool = False  # inference services that KEDA scales on their Prometheus metrics
    alerts: AlertSpec = field(default_factory=AlertSpec)
    training_pools: tuple[str, ...] = ()  # pools the cluster's training jobs run on: node alerts watch these


def _on_accelerators(names: Sequence[str]) -> dict[str, Any]:
    """Run only on nodes carrying one of these accelerators, whatever their taints."""
    return {
        "tolerations": TOLERATE_ALL,
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": LABEL_ACCELERATOR, "operator": "In", "values": sorted(set(names))}
                            ]
                        }
                    ]
                }
            }
        },
    }


@dataclass(frozen=True)
class ClusterAddonsArgs:
    """The add-ons a cluster gets: the pools decide the device plugins; where the cloud brings its own
    (GKE: device plugins, node autoscaling, metrics-server, Managed Prometheus) the flags turn meshstack's off."""

    node_pools: Sequence[NodePoolArgs]
    """The cluster's pools: their accelerators decide the device plugins and telemetry exporters."""
    needs: AddonNeeds = field(default_factory=AddonNeeds)
    """What the stack's workloads and storage ask of the cluster beyond its pools."""
    device_plugins: bool = True
    """Install meshstack's device plugins; off where the cloud brings its own (GKE)."""
    autoscaler_values: Mapping[str, Any] | None = None
    """The cluster-autoscaler chart's values for this cloud (its identity, region, discovery); None installs no
    autoscaler."""
    karpenter_values: Mapping[str, Any] | None = None
    """Karpenter's chart values (EKS, where the cluster asks for it); None installs none."""
    metrics_server: bool = True
    """Install metrics-server; off where the cloud runs one (GKE)."""
    prometheus_operator: bool = True
    """Install kube-prometheus-stack; off where the cloud's managed Prometheus is used (GKE)."""
    installed: Sequence[str] = ()
    """Releases an existing cluster's owners already run, which are left to them."""


def _plugin_values(chart: str, args: ClusterAddonsArgs) -> dict[str, Any]:
    """What a device plugin's chart takes besides where it runs."""
    if chart == "neuron-device-plugin":
        # neuron-monitor with its PodMonitor (where a Prometheus Operator reads it): NeuronCore
        # utilisation for the dashboards and alerts.
        return {
            "npd": {"enabled": False},
            "monitor": {"enabled": True, "prometheusPodMonitor": {"enabled": args.prometheus_operator}},
        }
    return {}


def releases_of(args: ClusterAddonsArgs) -> dict[str, dict[str, Any]]:
    """The charts a cluster gets, in install order, with their values: one decision that the
    component installs and the cloud's firewall opens webhook ports for."""
    pools, needs = args.node_pools, args.needs
    vendors: dict[str, list[str]] = {}
    for pool in pools:
        vendors.setdefault(pool.accelerator.vendor, []).append(pool.accelerator_name)
    out: dict[str, dict[str, Any]] = {}
    carried = [(VENDORS[v], accelerators) for v, accelerators in sorted(vendors.items())]
    for vendor, accelerators in carried:
        if args.device_plugins and vendor.device_plugin:
            out[vendor.device_plugin] = {**_plugin_values(vendor.device_plugin, args), **_on_accelerators(accelerators)}
    efa_pools = sorted(p.name for p in pools if p.efa)
    if args.device_plugins and efa_pools:
        # The chart reads no `affinity`: its node affinity is `key In values` per supportedInstanceLabels
        # key (charts.yaml's values_read). Selected by pool, so an EFA-capable pool that did not ask
        # for EFA gets no plugin.
        out["efa-device-plugin"] = {
            "tolerations": TOLERATE_ALL,
            "supportedInstanceLabels": {"keys": [LABEL_POOL], "values": efa_pools},
        }
    if args.autoscaler_values is not None:
        out["cluster-autoscaler"] = dict(args.autoscaler_values)
    if args.karpenter_values is not None:
        out["karpenter"] = dict(args.karpenter_values)
    if args.metrics_server:
        out["metrics-server"] = {}
    if args.prometheus_operator:
        out["kube-prometheus-stack"] = PROMETHEUS_VALUES
        # Accelerator telemetry (GKE has its own: the cluster's monitoring components).
        for vendor, accelerators in carried:
            if vendor.telemetry:
                out[vendor.telemetry] = _on_accelerators(accelerators)
    else:
        # The cloud's Prometheus (GKE's) has no node state, which the node alerts read.
        out["kube-state-metrics"] = NODE_STATE_VALUES
    out["jobset"] = {}
    out["kueue"] = {}
    if needs.scaled_services:
        out["keda"] = {}
    if needs.lustre:
        out["fsx-csi-driver"] = {"node": {"tolerateAllTaints": True}}
    if needs.efs:
        out["efs-csi-driver"] = {"node": {"tolerateAllTaints": True}}
    return {key: values for key, values in out.items() if key not in args.installed}


def webhook_ports(args: ClusterAddonsArgs) -> list[int]:
    """The ports the control plane calls the installed add-ons' webhooks and API services on."""
    return sorted({int(p) for key in releases_of(args) for p in CHARTS[key].get("control_plane_ports", [])})


class ClusterAddons(pulumi.ComponentResource):
    """Device plugins for the accelerators the pools carry (GKE brings its own: device_plugins=False),
    the node autoscaler and metrics-server where the cloud has none, JobSet and Kueue with the
    stack's queues, KEDA to scale inference, monitoring (where the cloud has none, Prometheus,
    Alertmanager and Grafana with the DCGM exporter on GPU nodes; everywhere, the alert rules and,
    with Grafana, the dashboard), the CSI drivers the stack's file systems need, and the namespaces
    workloads run in.

    `jobset` is exposed so JobSet objects can depend on it: a Helm release waits for
    its resources, so the CRD exists before any JobSet is sent; `releases` (by chart key) likewise
    for the custom objects a cloud's component declares (Karpenter's NodePools).
    """

    jobset: k8s.helm.v3.Release
    releases: dict[str, k8s.helm.v3.Release]

    def __init__(
        self,
        name: str,
        args: ClusterAddonsArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """The cluster's Kubernetes provider comes through `opts.provider`; every release uses it."""
        super().__init__("meshstack:k8s:ClusterAddons", name, None, opts)
        self._name = name
        # What the component was told to wait for (node groups, identities, a firewall), handed to each
        # child explicitly: Pulumi does not pass a component's depends_on down.
        self._waits = waits_for(opts)
        self._opts = pulumi.ResourceOptions(parent=self, depends_on=self._waits)
        pools, needs = args.node_pools, args.needs
        releases = self._releases(releases_of(args))
        self.releases = releases
        self.jobset = releases["jobset"]
        after_kueue = pulumi.ResourceOptions(parent=self, depends_on=[*self._waits, releases["kueue"]])
        for body in queue_objects(needs.queues, pools):
            meta = body["metadata"]
            suffix = f"-{meta['namespace']}" if "namespace" in meta else ""
            CustomObject(f"{name}-{body['kind'].lower()}-{meta['name']}{suffix}", body, after_kueue)
        vendors: set[str] = {p.accelerator.vendor for p in pools}
        monitoring = [releases["kube-prometheus-stack"]] if "kube-prometheus-stack" in releases else []
        after_monitoring = pulumi.ResourceOptions(parent=self, depends_on=[*self._waits, *monitoring])
        rules = rules_object(needs.alerts, vendors, needs.training_pools, args.prometheus_operator)
        CustomObject(f"{name}-alerts", rules, after_monitoring)
        if "kube-state-metrics" in releases:
            CustomObject(
                f"{name}-kube-state-metrics",
                node_state_scrape(CHARTS["kube-state-metrics"]["namespace"]),
                pulumi.ResourceOptions(parent=self, depends_on=[*self._waits, releases["kube-state-metrics"]]),
            )
        if args.prometheus_operator:
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard", **_object_args(dashboard_config_map(vendors)), opts=after_monitoring
            )
        for namespace in sorted(set(needs.namespaces)):
            k8s.core.v1.Namespace(
                f"{name}-ns-{namespace}",
                metadata={
                    "name": namespace,
                    # meshstack's pods meet restricted, EFA pods included: admission holds them to it.
                    "labels": {
                        "pod-security.kubernetes.io/enforce": "restricted",
                        "pod-security.kubernetes.io/warn": "restricted",
                    },
                },
                opts=self._opts,
            )
        self.register_outputs({})

    def _releases(self, planned: Mapping[str, Mapping[str, Any]]) -> dict[str, k8s.helm.v3.Release]:
        """Every planned release, each after the releases that install the CRDs of the custom resources
        it renders (charts.yaml's installs_crds and renders_crs)."""
        installer = {group: key for key in planned for group in CHARTS[key].get("installs_crds", [])}
        releases: dict[str, k8s.helm.v3.Release] = {}

        def declare(key: str) -> k8s.helm.v3.Release:
            if key not in releases:
                after = []
                for group in custom_resource_groups(key, planned[key]):
                    if group not in installer:
                        raise ValueError(
                            f"the {key} chart renders {group} objects, but no release of this cluster installs "
                            "their CRDs: turn them off in its values or install the chart that brings them"
                        )
                    after.append(declare(installer[group]))
                releases[key] = self._release(key, planned[key], after)
            return releases[key]

        for key in planned:
            declare(key)
        return releases

    def _release(
        self, key: str, values: Mapping[str, Any], after: Sequence[pulumi.Resource] = ()
    ) -> k8s.helm.v3.Release:
        chart = CHARTS[key]
        return k8s.helm.v3.Release(
            f"{self._name}-{key}",
            name=key,
            chart=chart["chart"],
            version=chart["version"],
            repository_opts={"repo": chart["repo"]} if "repo" in chart else None,
            namespace=chart["namespace"],
            create_namespace=True,
            atomic=True,
            values=values,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*self._waits, *after]),
        )


def _object_args(body: Mapping[str, Any]) -> dict[str, Any]:
    """A manifest's fields as a typed Kubernetes resource takes them."""
    return {k: v for k, v in body.items() if k not in ("apiVersion", "kind")}
