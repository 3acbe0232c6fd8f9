"""The VPC a GKE cluster lives in: one regional subnet with pod and service ranges, Cloud NAT for egress."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from meshstack.core.network import NetworkSpec

PODS, SERVICES = "pods", "services"


@dataclass(frozen=True)
class NetworkArgs:
    network: NetworkSpec
    """The stack's network spec: a new VPC's ranges, or an existing network and subnetwork."""
    project: str
    """The project the VPC is created in."""
    region: str
    """Where the subnetwork, router and NAT go."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Labels every labelled resource gets."""


class Network(pulumi.ComponentResource):
    """Private nodes reach the internet only through Cloud NAT; the firewall admits traffic
    between nodes and pods of the subnet and nothing from outside (the control plane's own
    rules are created by GKE).
    """

    network_id: pulumi.Output[str]
    subnetwork_id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: NetworkArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("meshstack:gcp:Network", name, None, opts)
        spec, project, region = args.network, args.project, args.region
        if spec.network is not None and spec.subnetwork is not None:
            # An existing network: its subnetwork (with the 'pods' and 'services' secondary ranges), NAT
            # and firewall rules are the project's, named by their self links; nothing is created.
            self.network_id = pulumi.Output.from_input(f"projects/{project}/global/networks/{spec.network}")
            self.subnetwork_id = pulumi.Output.from_input(
                f"projects/{project}/regions/{region}/subnetworks/{spec.subnetwork}"
            )
            self.register_outputs({"network_id": self.network_id, "subnetwork_id": self.subnetwork_id})
            return
        child = pulumi.ResourceOptions(parent=self)
        nodes_cidr = spec.subnets()[0][0]
        pods_cidr, services_cidr, _ = spec.gke_ranges()
        network = gcp.compute.Network(
            f"{name}-vpc", project=project, auto_create_subnetworks=False, routing_mode="REGIONAL", opts=child
        )
        subnet = gcp.compute.Subnetwork(
            f"{name}-nodes",
            project=project,
            region=region,
            network=network.id,
            ip_cidr_range=nodes_cidr,
            private_ip_google_access=True,
            secondary_ip_ranges=[
                {"range_name": PODS, "ip_cidr_range": pods_cidr},
                {"range_name": SERVICES, "ip_cidr_range": services_cidr},
            ],
            log_config={"aggregation_interval": "INTERVAL_10_MIN", "flow_sampling": 0.5},
            opts=child,
        )
        router = gcp.compute.Router(f"{name}-router", project=project, region=region, network=network.id, opts=child)
        gcp.compute.RouterNat(
            f"{name}-nat",
            project=project,
            region=region,
            router=router.name,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            log_config={"enable": True, "filter": "ERRORS_ONLY"},
            opts=child,
        )
        gcp.compute.Firewall(
            f"{name}-internal",
            project=project,
            network=network.id,
            direction="INGRESS",
            source_ranges=[nodes_cidr, pods_cidr],
            allows=[{"protocol": "all"}],
            description="nodes and pods of the cluster subnet talk to each other (collectives, DCN)",
            opts=child,
        )
        self.network_id = network.id
        self.subnetwork_id = subnet.id
        self.register_outputs({"network_id": self.network_id, "subnetwork_id": self.subnetwork_id})
