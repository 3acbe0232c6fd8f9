"""A GKE cluster its owners run: looked up by name, with a Kubernetes provider built from it, its
Workload Identity pool for the workloads' accounts, and the add-ons, queues and monitoring meshstack
installs; no cluster, node pool, node identity, KMS key or firewall."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from meshstack.components.gcp.gke import accelerator_dashboard, gke_addons, keda_metrics_reader, kubeconfig
from meshstack.components.gcp.iam import WorkloadAccounts
from meshstack.components.k8s.addons import AddonNeeds, ClusterAddons
from meshstack.components.lookups import nested
from meshstack.core.kubernetes import existing_minor
from meshstack.core.nodes import NodePoolArgs


@dataclass(frozen=True, kw_only=True)
class ExistingGkeClusterArgs:
    """A GKE cluster its owners run. Its API is reached at the looked-up endpoint with gke-gcloud-auth-plugin
    credentials, or through `context`."""

    cluster_name: str
    """The cluster's name in GKE, looked up at every `pulumi up` and preview."""
    project: str
    """The project the cluster is in."""
    location: str
    """The cluster's region or zone."""
    node_pools: Sequence[NodePoolArgs]
    """The nodes the cluster already has, as the stack's pools describe them (for placement and add-ons)."""
    context: str | None = None
    """A context of the deployer's kubeconfig to reach the API through instead of the looked-up endpoint."""
    installed: Sequence[str] = ()
    """Add-ons the cluster's owners already run, which are then not installed."""
    addons: AddonNeeds = field(default_factory=AddonNeeds)
    """What the stack's workloads and storage need installed (file system drivers, queues, namespaces)."""


class ExistingGkeCluster(pulumi.ComponentResource):
    """Outputs: `cluster_name`, `endpoint`, `kubeconfig` (no secret), `workload_pool` (the project's
    Workload Identity pool the cluster reports: workload accounts are bound through it), `network_id`
    (the cluster's VPC, where Filestore instances go); `provider`, `identity` and `addons`.

    GKE brings the device plugins, node autoscaling, metrics-server and Managed Prometheus, as on a
    cluster meshstack creates; on this one they are its owners' settings."""

    provider: k8s.Provider
    addons: ClusterAddons
    identity: WorkloadAccounts
    workload_pool: pulumi.Output[str]

    def __init__(self, name: str, args: ExistingGkeClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshstack:gcp:ExistingGkeCluster", name, {"existing_cluster": args.cluster_name}, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        project, cluster = args.project, args.cluster_name
        looked = gcp.container.get_cluster_output(name=cluster, location=args.location, project=project, opts=invoke)
        self.cluster_name = looked.name
        self.endpoint = looked.endpoint
        self.network_id = looked.network
        self.workload_pool = looked.workload_identity_configs.apply(
            lambda configs: str(nested(configs, 0, "workload_pool"))
        )
        self.identity = WorkloadAccounts(f"{name}-id", project, self)
        # The version is checked before anything reaches the cluster: every object goes through this provider.
        minor = looked.master_version.apply(lambda v: existing_minor(cluster, v))
        self.kubeconfig = pulumi.Output.all(looked.name, looked.endpoint, looked.master_auths, minor).apply(
            lambda a: kubeconfig(a[0], a[1], nested(a[2], 0, "cluster_ca_certificate"))
        )
        if args.context is None:
            self.provider = k8s.Provider(
                f"{name}-k8s", kubeconfig=self.kubeconfig, enable_server_side_apply=True, opts=child
            )
        else:
            context = args.context
            self.provider = k8s.Provider(
                f"{name}-k8s", context=minor.apply(lambda _: context), enable_server_side_apply=True, opts=child
            )
        after: list[pulumi.Resource] = []
        if args.addons.scaled_services:
            number = gcp.organizations.get_project_output(project_id=project, opts=invoke).number
            after.append(keda_metrics_reader(name, project, number, self.workload_pool, child))
        self.addons = ClusterAddons(
            f"{name}-addons",
            gke_addons(args.node_pools, args.addons, args.installed),
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=after),
        )
        accelerator_dashboard(name, project, {p.accelerator.vendor for p in args.node_pools}, child)
        self.register_outputs(
            {"cluster_name": self.cluster_name, "endpoint": self.endpoint, "kubeconfig": self.kubeconfig}
        )
