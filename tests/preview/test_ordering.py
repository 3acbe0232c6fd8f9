"""What a first `pulumi up` creates before what: walked on the recorded dependency graph of each shipped
stack (tests/support/graph.py says which edges the engine and the SDK honour)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meshstack.components.k8s.addons import CHARTS, custom_resource_groups
from meshstack.core.stack_file import find_project
from meshstack.preview.plan import Preview, preview_stack
from meshstack.preview.recorder import Resource
from tests.conftest import SHIPPED_STACKS, of_type, one, stack_config
from tests.support.existing_clusters import existing_aws, existing_gcp
from tests.support.graph import Graph, provider_urn

Previewer = Callable[[str], Preview]
MakeProject = Callable[[str, dict[str, Any]], Path]
RELEASE = "kubernetes:helm.sh/v3:Release"
# CRDs a cloud's own resource installs, not a chart: GKE's Managed Service for Prometheus (enabled in
# the cluster's monitoring_config) brings monitoring.googleapis.com's PodMonitoring and ClusterRules.
CLOUD_INSTALLED = {"monitoring.googleapis.com": "gcp:container/cluster:Cluster"}


def api_group(resource: Resource) -> str | None:
    """`kubernetes:<group>/<version>:<Kind>` -> the group of a custom resource, None for the built-in kinds
    (the core group and every *.k8s.io one) and for the provider's own types (Helm releases)."""
    if not resource.type.startswith("kubernetes:"):
        return None
    group = resource.type.split(":")[1].rsplit("/", 1)[0]
    if "." not in group or group.endswith(".k8s.io") or group in ("helm.sh", "yaml", "kustomize"):
        return None
    return group


def installers(preview: Preview) -> dict[tuple[str, str], list[Resource]]:
    """(CRD group, cluster) -> what installs it, where a cluster is known by its Kubernetes provider."""
    out: dict[tuple[str, str], list[Resource]] = {}
    for release in of_type(preview, RELEASE):
        for group in CHARTS[release.inputs["name"]].get("installs_crds", []):
            out.setdefault((group, provider_urn(release.provider)), []).append(release)
    return out


def users(preview: Preview) -> list[tuple[Resource, str]]:
    """Every custom object, and every release whose chart renders custom resources with the values it is given."""
    out = [(r, group) for r in preview.custom_resources if (group := api_group(r)) is not None]
    for release in of_type(preview, RELEASE):
        values: dict[str, Any] = release.inputs.get("values") or {}
        out += [(release, group) for group in custom_resource_groups(release.inputs["name"], values)]
    return out


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_whatever_uses_a_crd_waits_for_what_installs_it(preview: Previewer, stack: str) -> None:
    check_crd_order(preview(stack))


@pytest.mark.parametrize(("stack", "config"), [("prod-aws", existing_aws), ("prod-gcp", existing_gcp)])
def test_on_an_existing_cluster_whatever_uses_a_crd_still_waits_for_what_installs_it(
    project_copy: MakeProject, stack: str, config: Callable[[], dict[str, Any]]
) -> None:
    """The charts meshstack installs there still come first; GKE's Managed Prometheus CRDs are the existing
    cluster's own (the README asks for managed collection on), so nothing of the stack installs them."""
    result = preview_stack(stack, find_project(project_copy(stack, config())))
    check_crd_order(result, cluster_provided=frozenset(CLOUD_INSTALLED))


def check_crd_order(result: Preview, cluster_provided: frozenset[str] = frozenset()) -> None:
    graph = Graph(result.resources)
    installed = installers(result)
    checked = 0
    for resource, group in users(result):
        before = graph.waits_for(resource.urn)
        if group in cluster_provided:
            continue
        if group in CLOUD_INSTALLED:
            clusters = [r for r in of_type(result, CLOUD_INSTALLED[group]) if r.urn in before]
            assert clusters, f"{resource.name} ({group}) is created before any {CLOUD_INSTALLED[group]}"
            checked += 1
            continue
        found = installed.get((group, provider_urn(resource.provider)))
        assert found, f"{resource.name} uses {group}, which nothing in its cluster installs"
        assert any(r.urn in before for r in found), (
            f"{resource.name} uses {group} but may be created before {[r.name for r in found]}, which installs it"
        )
        checked += 1
    assert checked >= 5


def test_the_charts_that_render_monitors_wait_for_the_prometheus_operator(preview: Previewer) -> None:
    """The review's case: dcgm-exporter's default ServiceMonitor, installed in parallel with
    kube-prometheus-stack, failed the first `up` on "no matches for kind ServiceMonitor"."""
    result = preview("prod-aws")
    graph = Graph(result.resources)
    operator = one(result, RELEASE, "prod-aws-train-addons-kube-prometheus-stack")
    dcgm = one(result, RELEASE, "prod-aws-train-addons-dcgm-exporter")
    assert custom_resource_groups("dcgm-exporter", dcgm.inputs["values"]) == ["monitoring.coreos.com"]
    assert operator.urn in graph.waits_for(dcgm.urn)
    # The CRD installers themselves wait for nothing of each other.
    jobset = one(result, RELEASE, "prod-aws-train-addons-jobset")
    assert operator.urn not in graph.waits_for(jobset.urn)


def test_the_neuron_chart_and_its_pod_monitor_wait_for_the_prometheus_operator(project_copy: MakeProject) -> None:
    config = stack_config("dev")
    config["meshstack:clusters"][0]["node_pools"].append(
        {"name": "trn", "accelerator": "trainium1", "instance_type": "trn1.2xlarge", "max_nodes": 1, "market": "spot"}
    )
    config["meshstack:budget"].update(max_hourly_usd=50, max_accelerators=4)
    result = preview_stack("dev", find_project(project_copy("dev", config)))
    graph = Graph(result.resources)
    neuron = one(result, RELEASE, "dev-dev-addons-neuron-device-plugin")
    assert custom_resource_groups("neuron-device-plugin", neuron.inputs["values"]) == ["monitoring.coreos.com"]
    operator = one(result, RELEASE, "dev-dev-addons-kube-prometheus-stack")
    assert operator.urn in graph.waits_for(neuron.urn)


def test_workload_identity_members_wait_for_the_cluster_that_creates_the_pool(preview: Previewer) -> None:
    """PROJECT.svc.id.goog exists once the project's first Workload Identity cluster does: an IAM member
    naming it before that fails with "Identity Pool does not exist" (review P0-3)."""
    result = preview("prod-gcp")
    graph = Graph(result.resources)
    cluster = one(result, "gcp:container/cluster:Cluster", "prod-gcp-tpu")
    members = [
        r
        for r in result.custom_resources
        if r.type in ("gcp:serviceaccount/iAMMember:IAMMember", "gcp:projects/iAMMember:IAMMember")
        and ".svc.id.goog" in str(r.inputs.get("member"))
    ]
    names = {r.name for r in members}
    assert names >= {"prod-gcp-tpu-id-wl-pretrain", "prod-gcp-tpu-id-wl-chat", "prod-gcp-tpu-keda-metrics"}
    for member in members:
        assert cluster.urn in graph.waits_for(member.urn), f"{member.name} names the pool before the cluster exists"
        # From the cluster's own output, so it names the pool the cluster reports.
        assert cluster.urn in member.dependencies


@pytest.mark.parametrize("stack", ("dev", "prod-aws"))
def test_eks_objects_wait_for_the_deployers_access_and_cluster_dns(preview: Previewer, stack: str) -> None:
    """Everything sent through the cluster's Kubernetes provider waits for the access policy that lets
    the deployer in (without it the API answers 401/403), and every Helm release for CoreDNS (the
    autoscaler, for one, resolves AWS endpoints and would crash-loop inside Helm's atomic wait)."""
    result = preview(stack)
    graph = Graph(result.resources)
    [cluster] = of_type(result, "aws:eks/cluster:Cluster")
    provider = one(result, "pulumi:providers:kubernetes", f"{cluster.name}-k8s")
    deployer = one(result, "aws:eks/accessPolicyAssociation:AccessPolicyAssociation", f"{cluster.name}-deployer")
    coredns = one(result, "aws:eks/addon:Addon", f"{cluster.name}-coredns")
    through_provider = [r for r in result.custom_resources if provider_urn(r.provider) == provider.urn]
    assert len(through_provider) > 20
    for resource in through_provider:
        assert deployer.urn in graph.waits_for(resource.urn), (
            f"{resource.name} may be sent before the deployer's access"
        )
    for release in of_type(result, RELEASE):
        assert coredns.urn in graph.waits_for(release.urn), f"{release.name} may install before CoreDNS"
