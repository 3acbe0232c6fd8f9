"""The VPC a cluster lives in: private subnets for nodes, public ones only for NAT and load balancers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from meshstack.components.tags import named
from meshstack.core.network import NetworkSpec

INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "sts")


@dataclass(frozen=True)
class NetworkArgs:
    network: NetworkSpec
    """The stack's network spec: a new VPC's ranges and zones, or an existing VPC's subnets."""
    region: str
    """The region the VPC and its endpoints are created in."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags every taggable resource gets."""


class Network(pulumi.ComponentResource):
    """A VPC across the spec's AZs (by zone id where it names them, `zone_subnets` mapping each to its
    private subnet) with NAT egress, an S3 gateway endpoint, ECR and STS interface
    endpoints and the node security group.

    The node security group admits traffic only from its own members, on every
    protocol: EFA's SRD transport is not TCP, and NCCL opens ports at random.
    Nothing from outside the group gets in; egress is open so nodes can pull images.
    """

    vpc_id: pulumi.Output[str]
    private_subnet_ids: list[pulumi.Output[str]]
    zone_subnets: dict[str, pulumi.Output[str]]
    public_subnet_ids: list[pulumi.Output[str]]
    node_security_group_id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: NetworkArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("meshstack:aws:Network", name, None, opts)
        spec, tags = args.network, args.tags
        child = pulumi.ResourceOptions(parent=self)
        vpc_id: pulumi.Input[str]
        private: list[pulumi.Input[str]]
        public: list[pulumi.Input[str]]
        if spec.vpc_id is not None and spec.subnet_ids is not None:
            # An existing VPC: its subnets, routes, NAT and endpoints are the account's; only the node
            # security group, which is meshstack's own, is created in it.
            vpc_id, private, public = spec.vpc_id, list(spec.subnet_ids), []
        else:
            created = self._create(name, args)
            vpc_id, private, public = created[0], list(created[1]), list(created[2])
        nodes = aws.ec2.SecurityGroup(
            f"{name}-nodes",
            vpc_id=vpc_id,
            description="meshstack nodes: all traffic between members (EFA, NCCL), egress to anywhere",
            tags=named(tags, f"{name}-nodes"),
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-nodes-self-in",
            security_group_id=nodes.id,
            referenced_security_group_id=nodes.id,
            ip_protocol="-1",
            description="all protocols from other nodes (EFA requires this)",
            tags=named(tags, f"{name}-nodes-self-in"),
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-nodes-self-out",
            security_group_id=nodes.id,
            referenced_security_group_id=nodes.id,
            ip_protocol="-1",
            description="all protocols to other nodes (EFA requires this)",
            tags=named(tags, f"{name}-nodes-self-out"),
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-nodes-egress",
            security_group_id=nodes.id,
            cidr_ipv4="0.0.0.0/0",
            ip_protocol="-1",
            description="egress through NAT for images and APIs",
            tags=named(tags, f"{name}-nodes-egress"),
            opts=child,
        )

        self.vpc_id = pulumi.Output.from_input(vpc_id)
        self.private_subnet_ids = [pulumi.Output.from_input(s) for s in private]
        self.zone_subnets = dict(zip(spec.zones or (), self.private_subnet_ids, strict=False))
        self.public_subnet_ids = [pulumi.Output.from_input(s) for s in public]
        self.node_security_group_id = nodes.id
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "public_subnet_ids": self.public_subnet_ids,
                "node_security_group_id": self.node_security_group_id,
            }
        )

    def _create(
        self, name: str, args: NetworkArgs
    ) -> tuple[pulumi.Output[str], list[pulumi.Output[str]], list[pulumi.Output[str]]]:
        """The VPC, its public and private subnets per AZ, NAT, routes and endpoints: (vpc, private, public)."""
        spec, region, tags = args.network, args.region, args.tags
        child = pulumi.ResourceOptions(parent=self)
        private_cidrs, public_cidrs = spec.subnets()
        # Zone ids name the same place in every account; without them, the first available AZs.
        places: list[dict[str, pulumi.Input[str]]]
        if spec.zones:
            places = [{"availability_zone_id": zone} for zone in spec.zones]
        else:
            names = aws.get_availability_zones_output(
                state="available",
                filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
                opts=pulumi.InvokeOutputOptions(parent=self),
            ).names
            places = [{"availability_zone": names[i]} for i in range(spec.availability_zones)]

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=spec.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=named(tags, f"{name}-vpc"),
            opts=child,
        )
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=named(tags, f"{name}-igw"), opts=child)
        public_rt = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags=named(tags, f"{name}-public"),
            opts=child,
        )

        public_subnets: list[aws.ec2.Subnet] = []
        private_subnets: list[aws.ec2.Subnet] = []
        for i, (private_cidr, public_cidr) in enumerate(zip(private_cidrs, public_cidrs, strict=True)):
            where = places[i]
            public = aws.ec2.Subnet(
                f"{name}-public-{i}",
                vpc_id=vpc.id,
                cidr_block=public_cidr,
                **where,
                map_public_ip_on_launch=False,
                tags={**named(tags, f"{name}-public-{i}"), "kubernetes.io/role/elb": "1"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{i}", subnet_id=public.id, route_table_id=public_rt.id, opts=child
            )
            public_subnets.append(public)
            private_subnets.append(
                aws.ec2.Subnet(
                    f"{name}-private-{i}",
                    vpc_id=vpc.id,
                    cidr_block=private_cidr,
                    **where,
                    tags={**named(tags, f"{name}-private-{i}"), "kubernetes.io/role/internal-elb": "1"},
                    opts=child,
                )
            )

        nat_count = 1 if spec.nat_gateways == "single" else len(public_subnets)
        nats = []
        for i in range(nat_count):
            eip = aws.ec2.Eip(f"{name}-nat-{i}", domain="vpc", tags=named(tags, f"{name}-nat-{i}"), opts=child)
            nats.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{i}",
                    allocation_id=eip.id,
                    subnet_id=public_subnets[i].id,
                    tags=named(tags, f"{name}-nat-{i}"),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
            )

        private_rts = []
        for i, subnet in enumerate(private_subnets):
            rt = aws.ec2.RouteTable(
                f"{name}-private-{i}",
                vpc_id=vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nats[i % nat_count].id}],
                tags=named(tags, f"{name}-private-{i}"),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(f"{name}-private-{i}", subnet_id=subnet.id, route_table_id=rt.id, opts=child)
            private_rts.append(rt)

        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in private_rts],
            tags=named(tags, f"{name}-s3"),
            opts=child,
        )

        # Image pulls (ECR's API and its registry) and role assumption (STS) through PrivateLink, so the
        # nodes' heaviest traffic skips NAT's per-GB charge; layers themselves come from S3, above.
        endpoints = aws.ec2.SecurityGroup(
            f"{name}-endpoints",
            vpc_id=vpc.id,
            description="meshstack VPC endpoints: HTTPS from inside the VPC",
            tags=named(tags, f"{name}-endpoints"),
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-endpoints-https",
            security_group_id=endpoints.id,
            cidr_ipv4=spec.vpc_cidr,
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            description="HTTPS from the VPC",
            tags=named(tags, f"{name}-endpoints-https"),
            opts=child,
        )
        for service in INTERFACE_ENDPOINTS:
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}",
                vpc_id=vpc.id,
                service_name=f"com.amazonaws.{region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[s.id for s in private_subnets],
                security_group_ids=[endpoints.id],
                tags=named(tags, f"{name}-{service.replace('.', '-')}"),
                opts=child,
            )

        return vpc.id, [s.id for s in private_subnets], [s.id for s in public_subnets]
