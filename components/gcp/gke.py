"""A private GKE cluster: Workload Identity, shielded nodes, secrets encrypted with Cloud KMS, GPU pools
with their drivers, and TPU node pools, one per slice, placed compactly in their topology."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from meshstack.components.gcp.dashboard import dashboard_json
from meshstack.components.gcp.iam import ClusterIdentity, ClusterIdentityArgs
from meshstack.components.gcp.maintenance import MaintenanceArgs, maintenance_policy
from meshstack.components.gcp.network import PODS, SERVICES
from meshstack.components.gcp.node_pools import member_key, member_types, node_pool_keys
from meshstack.components.gcp.pricing import FALLBACK_LABEL
from meshstack.components.k8s.addons import AddonNeeds, ClusterAddons, ClusterAddonsArgs, webhook_ports
from meshstack.components.k8s.kubeconfig import exec_kubeconfig
from meshstack.core.nodes import NodePoolArgs, compute_class_taints, launch_types, market_variants, node_labels
from meshstack.core.types import WORKLOAD_NODES
from meshstack.core.vendors import VENDORS
from meshstack.core.vocabulary import TAINT_EFFECT_ENUMS
from meshstack.workloads.k8s.objects import CustomObject

KEDA_PRINCIPAL = (
    "principal://iam.googleapis.com/projects/{number}/locations/global/workloadIdentityPools/"
    "{pool}/subject/ns/keda/sa/keda-operator"
)
# GKE's kube state metrics packages: Pods, Deployments, StatefulSets, DaemonSets, HPAs, PVs and PVCs,
# and JobSets (GKE 1.32.1-gke.1357001 and later), GKE "Collect and view kube state metrics" (read
# 2026-12-07); the values pulumi_gcp's ClusterMonitoringConfig.enable_components documents.
KUBE_STATE_PACKAGES = ("STORAGE", "HPA", "POD", "DAEMONSET", "DEPLOYMENT", "STATEFULSET", "JOBSET")


def kubeconfig(name: str, endpoint: str, ca_data: str) -> str:
    """A kubeconfig that gets tokens from gke-gcloud-auth-plugin; it holds no secret."""
    plugin = {
        "command": "gke-gcloud-auth-plugin",
        "provideClusterInfo": True,
        "installHint": "gcloud components install gke-gcloud-auth-plugin",
    }
    return exec_kubeconfig(name, f"https://{endpoint}", ca_data, plugin)


def _workload_pool(config: Any) -> str:
    """The pool of a cluster's workload_identity_config (a typed output, or a dict where mocked)."""
    pool = config.get("workload_pool") if isinstance(config, dict) else getattr(config, "workload_pool", None)
    if not pool:
        raise ValueError("the cluster reports no Workload Identity pool")
    return str(pool)


def gke_addons(pools: Sequence[NodePoolArgs], needs: AddonNeeds, installed: Sequence[str] = ()) -> ClusterAddonsArgs:
    """GKE brings the device plugins, node autoscaling, metrics-server and Managed Prometheus; file
    systems other than its own (Lustre, EFS) are not offered."""
    return ClusterAddonsArgs(
        pools,
        replace(needs, lustre=False, efs=False),
        device_plugins=False,
        metrics_server=False,
        prometheus_operator=False,
        installed=installed,
    )


def keda_metrics_reader(
    name: str,
    project: str,
    number: pulumi.Input[str],
    workload_pool: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> gcp.projects.IAMMember:
    """KEDA queries Managed Prometheus as its own Kubernetes service account, federated through Workload
    Identity: no Google service account or key."""
    return gcp.projects.IAMMember(
        f"{name}-keda-metrics",
        project=project,
        role="roles/monitoring.viewer",
        member=pulumi.Output.all(number, workload_pool).apply(lambda a: KEDA_PRINCIPAL.format(number=a[0], pool=a[1])),
        opts=opts,
    )


def accelerator_dashboard(
    name: str, project: str, vendors: set[str], opts: pulumi.ResourceOptions
) -> gcp.monitoring.Dashboard:
    return gcp.monitoring.Dashboard(
        f"{name}-dashboard",
        project=project,
        dashboard_json=dashboard_json(f"meshstack {name}: training, serving, accelerators", vendors),
        opts=opts,
    )


def node_pool_members(cluster: str, pool: NodePoolArgs) -> list[tuple[str, NodePoolArgs]]:
    """(resource name, the pool as that node pool runs it) for each GKE node pool of the pool, in the order
    they are tried: a slice each for a TPU pool of several, else a market and machine type each. Only the
    first market's first type keeps the pool's floor, reservation and priced workload nodes."""
    if pool.tpu is not None and pool.tpu.slices > 1:
        return [(f"{cluster}-{key}", pool) for key in node_pool_keys(pool.name, pool.tpu.slices, pool.markets, ())]
    members = []
    for rank, variant in enumerate(market_variants(pool)):
        for j, machine in enumerate(member_types(variant.market, launch_types(pool))):
            member = replace(
                variant,
                instance_type=machine,
                instance_types=(machine,),
                gpu_type=pool.gpu_types.get(machine, pool.gpu_type),
            )
            if j:
                member = replace(member, min_nodes=0, desired_nodes=0, workload_nodes=0)
            members.append((f"{cluster}-{member_key(pool.name, rank, variant.market, j)}", member))
    return members


def compute_class(pool: NodePoolArgs, node_pools: Sequence[pulumi.Output[str]]) -> dict[str, Any]:
    """The class GKE's autoscaler follows for the pool's pods: its node pools one priority each, in order.
    No node pool is created for it (meshstack creates them all), nothing is tried past the last, and no
    running pod is moved back to a higher priority (active migration would restart a training job)."""
    return {
        "apiVersion": "cloud.google.com/v1",
        "kind": "ComputeClass",
        "metadata": {"name": pool.compute_class},
        "spec": {
            "description": f"meshstack pool {pool.name}: {' then '.join(pool.markets)}, "
            f"on {', '.join(launch_types(pool))}",
            "nodePoolAutoCreation": {"enabled": False},
            "activeMigration": {"optimizeRulePriority": False},
            "whenUnsatisfiable": "DoNotScaleUp",
            "priorities": [{"nodepools": [name]} for name in node_pools],
        },
    }


@dataclass(frozen=True, kw_only=True)
class GkeClusterArgs:
    """A regional cluster whose node pools run in `zone` (or the zone a pool names), upgraded only in the
    `maintenance` window. The control plane takes `master_cidr` (a /28);
    pods and services use the subnetwork's secondary ranges named by meshstack.components.gcp.network."""

    project: str
    """The Google Cloud project the cluster, its key and its node pools are created in."""
    region: str
    """The region of the (regional) cluster and its KMS key ring."""
    zone: str
    """The zone node pools run in unless a pool names its own."""
    kubernetes_version: str
    """The minor version, such as '1.35' (the cluster's minimum master version; REGULAR channel)."""
    node_pools: Sequence[NodePoolArgs]
    """The pools: a node pool each (per slice for TPUs, per market and type with a compute class)."""
    network_id: pulumi.Input[str]
    """The VPC network the cluster joins."""
    subnetwork_id: pulumi.Input[str]
    """Its subnetwork, with the secondary ranges named by meshstack.components.gcp.network."""
    master_cidr: str
    """The control plane's private /28."""
    public_access_cidrs: Sequence[str] = ()
    """Networks the public endpoint admits; empty keeps the endpoint private."""
    deployer_cidrs: Sequence[str] = ()
    """Private networks `pulumi up` runs from, admitted to the endpoint."""
    addons: AddonNeeds = field(default_factory=AddonNeeds)
    """What the add-ons must serve: storage drivers, scaled services, alerts, queues."""
    maintenance: MaintenanceArgs = field(default_factory=MaintenanceArgs)
    """When GKE may upgrade the control plane and nodes, and when not."""
    deletion_protection: bool = True
    """GKE refuses to delete the cluster while set (a `pulumi destroy` must clear it first)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Labels on the cluster, its key and its nodes (the stack's tags as GCP labels)."""


class GkeCluster(pulumi.ComponentResource):
    """Outputs: `cluster_name`, `endpoint`, `kubeconfig` (no secret: it calls gke-gcloud-auth-plugin),
    `provider` (Kubernetes), `identity` (node and workload service accounts) and `addons`."""

    provider: k8s.Provider
    addons: ClusterAddons
    identity: ClusterIdentity
    workload_pool: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: GkeClusterArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        members = {pool.name: node_pool_members(name, pool) for pool in args.node_pools}
        busy = {resource: member.workload_nodes for pool in members.values() for resource, member in pool}
        super().__init__("meshstack:gcp:GkeCluster", name, {WORKLOAD_NODES: busy}, opts)
        child = pulumi.ResourceOptions(parent=self)
        project, region, zone, labels = args.project, args.region, args.zone, args.labels
        self._labels = dict(labels)
        vendors: set[str] = {p.accelerator.vendor for p in args.node_pools}
        self.identity = ClusterIdentity(f"{name}-id", ClusterIdentityArgs(project), opts=child)
        ring = gcp.kms.KeyRing(f"{name}-ring", project=project, location=region, opts=child)
        key = gcp.kms.CryptoKey(
            f"{name}-secrets",
            key_ring=ring.id,
            rotation_period="7776000s",
            purpose="ENCRYPT_DECRYPT",
            labels=dict(labels),
            opts=child,
        )
        number = gcp.organizations.get_project_output(
            project_id=project, opts=pulumi.InvokeOutputOptions(parent=self)
        ).number
        grant = gcp.kms.CryptoKeyIAMMember(
            f"{name}-gke-agent",
            crypto_key_id=key.id,
            role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
            member=number.apply(lambda n: f"serviceAccount:service-{n}@container-engine-robot.iam.gserviceaccount.com"),
            opts=child,
        )
        cluster = gcp.container.Cluster(
            name,
            name=name,
            project=project,
            location=region,
            network=args.network_id,
            subnetwork=args.subnetwork_id,
            remove_default_node_pool=True,
            initial_node_count=1,
            min_master_version=args.kubernetes_version,
            release_channel={"channel": "REGULAR"},
            maintenance_policy=maintenance_policy(args.maintenance),
            ip_allocation_policy={"cluster_secondary_range_name": PODS, "services_secondary_range_name": SERVICES},
            private_cluster_config={
                "enable_private_nodes": True,
                "enable_private_endpoint": not args.public_access_cidrs,
                "master_ipv4_cidr_block": args.master_cidr,
            },
            master_authorized_networks_config={
                "cidr_blocks": [
                    {"cidr_block": c, "display_name": f"allowed-{i}"} for i, c in enumerate(args.public_access_cidrs)
                ]
                + [{"cidr_block": c, "display_name": f"deployer-{i}"} for i, c in enumerate(args.deployer_cidrs)],
            },
            workload_identity_config={"workload_pool": f"{project}.svc.id.goog"},
            # Dataplane V2 enforces Kubernetes NetworkPolicy (the serving pods' ingress rules).
            datapath_provider="ADVANCED_DATAPATH",
            database_encryption={"state": "ENCRYPTED", "key_name": key.id},
            enable_shielded_nodes=True,
            logging_config={"enable_components": ["SYSTEM_COMPONENTS", "WORKLOADS"]},
            # GKE's kube state metrics packages (on by default on a new cluster, off once this list
            # leaves them out), and DCGM: GKE's own GPU telemetry (with the GPU driver it installs),
            # all in Managed Prometheus. Node state is not among them: ClusterAddons installs it.
            monitoring_config={
                "enable_components": [
                    "SYSTEM_COMPONENTS",
                    *KUBE_STATE_PACKAGES,
                    *sorted(m for v in vendors if (m := VENDORS[v].gke_monitoring)),
                ],
                "managed_prometheus": {"enabled": True},
            },
            addons_config={
                "gcs_fuse_csi_driver_config": {"enabled": True},
                "gcp_filestore_csi_driver_config": {"enabled": True},
            },
            node_config={
                "service_account": self.identity.node_email,
                "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"],
                "workload_metadata_config": {"mode": "GKE_METADATA"},
                "shielded_instance_config": {"enable_secure_boot": True, "enable_integrity_monitoring": True},
            },
            resource_labels=dict(labels),
            deletion_protection=args.deletion_protection,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[grant]),
        )
        self.cluster_name = cluster.name
        self.endpoint = cluster.endpoint
        # The cluster creates the project's Workload Identity pool: whatever names it is built from this.
        self.workload_pool = cluster.workload_identity_config.apply(_workload_pool)
        node_pools = {
            pool: [self._node_pool(resource, member, cluster, project, region, zone) for resource, member in listed]
            for pool, listed in members.items()
        }
        pools = [p for listed in node_pools.values() for p in listed]
        self.kubeconfig = pulumi.Output.all(cluster.name, cluster.endpoint, cluster.master_auth).apply(
            lambda a: kubeconfig(a[0], a[1], a[2]["cluster_ca_certificate"])
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=pools),
        )
        after: list[pulumi.Resource] = []
        if args.addons.scaled_services:
            after.append(keda_metrics_reader(name, project, number, self.workload_pool, child))
        addons = gke_addons(args.node_pools, args.addons)
        # A private cluster's control plane reaches nodes only on 443 and 10250: the add-ons'
        # webhooks (and KEDA's metrics API) listen elsewhere, and would time out every admission.
        ports = webhook_ports(addons)
        if ports:
            after.append(
                gcp.compute.Firewall(
                    f"{name}-webhooks",
                    project=project,
                    network=args.network_id,
                    direction="INGRESS",
                    source_ranges=[args.master_cidr],
                    target_service_accounts=[self.identity.node_email],
                    allows=[{"protocol": "tcp", "ports": [str(p) for p in ports]}],
                    description="GKE control plane to the cluster add-ons' webhooks",
                    opts=child,
                )
            )
        self.addons = ClusterAddons(
            f"{name}-addons",
            addons,
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=after),
        )
        for pool in args.node_pools:
            if pool.compute_class:
                CustomObject(
                    f"{name}-{pool.name}-class",
                    compute_class(pool, [p.name for p in node_pools[pool.name]]),
                    pulumi.ResourceOptions(parent=self, provider=self.provider),
                )
        accelerator_dashboard(name, project, vendors, child)
        self.register_outputs(
            {"cluster_name": self.cluster_name, "endpoint": self.endpoint, "kubeconfig": self.kubeconfig}
        )

    def _node_pool(
        self,
        name: str,
        pool: NodePoolArgs,
        cluster: gcp.container.Cluster,
        project: str,
        region: str,
        zone: str,
    ) -> gcp.container.NodePool:
        """GKE adds the nvidia.com/gpu and google.com/tpu taints itself; only the spec's own (and a compute
        class's) go here."""
        own = [{"key": t.key, "value": t.value, "effect": t.effect} for t in pool.taints] + compute_class_taints(pool)
        config: dict[str, Any] = {
            "machine_type": pool.instance_type,
            "service_account": self.identity.node_email,
            "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            "labels": node_labels(pool),
            "resource_labels": {**self._labels, **({FALLBACK_LABEL: "_".join(pool.fallback)} if pool.fallback else {})},
            "taints": [{**t, "effect": TAINT_EFFECT_ENUMS[t["effect"]]} for t in own],
            "shielded_instance_config": {"enable_secure_boot": True, "enable_integrity_monitoring": True},
            "workload_metadata_config": {"mode": "GKE_METADATA"},
            "gvnic": {"enabled": True},
            "metadata": {"disable-legacy-endpoints": "true"},
            "disk_size_gb": pool.root_volume_gib,
            "disk_type": "pd-balanced",
            "spot": pool.market == "spot",
        }
        if pool.reservation_id is not None:
            config["reservation_affinity"] = {
                "consume_reservation_type": "SPECIFIC_RESERVATION",
                "key": "compute.googleapis.com/reservation-name",
                "values": [pool.reservation_id],
            }
        if pool.gpu_type is not None:
            config["guest_accelerators"] = [
                {
                    "type": pool.gpu_type,
                    "count": pool.accelerators_per_node,
                    "gpu_driver_installation_config": {"gpu_driver_version": "LATEST"},
                }
            ]
        placement = None
        if pool.tpu is not None and pool.tpu.hosts > 1:
            placement = {"type": "COMPACT", "tpu_topology": pool.tpu.topology}
        return gcp.container.NodePool(
            name,
            project=project,
            cluster=cluster.id,
            location=region,
            node_locations=[pool.zone or zone],
            initial_node_count=pool.desired_nodes,
            autoscaling={"min_node_count": pool.min_nodes, "max_node_count": pool.max_nodes},
            management={"auto_repair": True, "auto_upgrade": True},
            placement_policy=placement,
            node_config=config,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["initialNodeCount"]),
        )
