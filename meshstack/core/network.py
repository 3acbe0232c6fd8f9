"""The VPC: its address space and how it is split into subnets across availability zones."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from meshstack.core.validation import SpecModel, check_cidr, field_error, parse_cidr

VPC_ID = r"^vpc-([0-9a-f]{8}|[0-9a-f]{17})$"
SUBNET_ID = r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$"
GCP_NAME = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
# What a stack that builds its own network sets; on an existing one they describe nothing meshstack makes.
BUILT_NETWORK_FIELDS = ("vpc_cidr", "private_subnet_cidrs", "public_subnet_cidrs", "nat_gateways")


class NetworkSpec(SpecModel):
    vpc_cidr: str = Field(default="10.0.0.0/16", description="The VPC's IPv4 block.")
    availability_zones: int = Field(default=2, ge=2, le=6, description="How many AZs the subnets span.")
    zones: list[str] | None = Field(
        default=None,
        description="AWS: the zone ids of those AZs (use1-az4: the same place in every account, unlike "
        "us-east-1a), one per AZ. Omitted: the first available AZs, unknown until deploy.",
    )
    private_subnet_cidrs: list[str] | None = Field(
        default=None, description="One per AZ; carved from the VPC block when omitted. Nodes live here."
    )
    public_subnet_cidrs: list[str] | None = Field(
        default=None, description="One per AZ; carved from the VPC block when omitted. NAT and load balancers only."
    )
    nat_gateways: Literal["single", "per-az"] = Field(
        default="single", description="One shared NAT gateway (cheap) or one per AZ (survives an AZ outage)."
    )
    pods_cidr: str | None = Field(default=None, description="Google Cloud: pods' secondary range (172.16.0.0/14).")
    services_cidr: str | None = Field(
        default=None, description="Google Cloud: services' secondary range (172.20.0.0/20)."
    )
    master_cidr: str | None = Field(default=None, description="Google Cloud: the control plane's /28 (172.21.0.0/28).")

    vpc_id: str | None = Field(
        default=None,
        description="AWS: an existing VPC (vpc-...) to run in instead of creating one; needs subnet_ids and zones.",
    )
    subnet_ids: list[str] | None = Field(
        default=None,
        description="AWS, with vpc_id: the existing private subnets the nodes go in, one per zone in the order "
        "of `zones` (subnet_ids[i] lies in zones[i]).",
    )
    network: str | None = Field(
        default=None, description="Google Cloud: an existing VPC network's name to run in; needs subnetwork."
    )
    subnetwork: str | None = Field(
        default=None,
        description="Google Cloud, with network: the existing subnetwork's name in the stack's region, with "
        "secondary ranges named 'pods' and 'services'.",
    )

    @property
    def existing(self) -> bool:
        """The stack runs in a network it does not create (AWS vpc_id or Google Cloud network)."""
        return self.vpc_id is not None or self.network is not None

    @field_validator("vpc_id")
    @classmethod
    def _check_vpc_id(cls, value: str | None) -> str | None:
        if value is not None and not re.match(VPC_ID, value):
            raise field_error("", f"'{value}' is not a VPC id such as vpc-0123456789abcdef0")
        return value

    @field_validator("subnet_ids")
    @classmethod
    def _check_subnet_ids(cls, value: list[str] | None) -> list[str] | None:
        for i, subnet in enumerate(value or []):
            if not re.match(SUBNET_ID, subnet):
                raise field_error(f"[{i}]", f"'{subnet}' is not a subnet id such as subnet-0123456789abcdef0")
        if value is not None and len(set(value)) != len(value):
            raise field_error("", "names a subnet twice")
        return value

    @field_validator("network", "subnetwork")
    @classmethod
    def _check_gcp_name(cls, value: str | None) -> str | None:
        if value is not None and not re.match(GCP_NAME, value):
            raise field_error("", f"'{value}' is not a Google Cloud resource name (lower-case letters, digits, -)")
        return value

    @model_validator(mode="after")
    def _check_existing(self) -> NetworkSpec:
        """An existing network is named whole (the VPC with its subnets in known zones), and nothing that
        only describes a network meshstack would build is set beside it."""
        if (self.vpc_id is None) != (self.subnet_ids is None):
            field = "subnet_ids" if self.vpc_id is not None else "vpc_id"
            raise field_error(field, "vpc_id and subnet_ids go together: name the VPC and its private subnets")
        if (self.network is None) != (self.subnetwork is None):
            field = "subnetwork" if self.network is not None else "network"
            raise field_error(field, "network and subnetwork go together: name the network and its subnetwork")
        if self.vpc_id is not None and self.network is not None:
            raise field_error("network", "name an AWS vpc_id or a Google Cloud network, not both")
        if self.existing:
            for name in BUILT_NETWORK_FIELDS:
                if name in self.model_fields_set:
                    raise field_error(name, "describes a network meshstack creates; the existing one is used as it is")
        if self.zones is not None and self.subnet_ids is None and "availability_zones" not in self.model_fields_set:
            # The zone ids say how many AZs there are (an existing cluster's network lists only them).
            self.availability_zones = min(max(len(self.zones), 2), 6)
        if self.subnet_ids is not None:
            if self.zones is None:
                raise field_error("zones", "with subnet_ids, list each subnet's zone id (use1-az4), in the same order")
            if len(self.zones) != len(self.subnet_ids):
                raise field_error(
                    "subnet_ids", f"has {len(self.subnet_ids)} subnets for {len(self.zones)} zones: one per zone"
                )
            if "availability_zones" not in self.model_fields_set:
                self.availability_zones = len(self.subnet_ids)
            elif len(self.subnet_ids) != self.availability_zones:
                raise field_error(
                    "availability_zones",
                    f"is {self.availability_zones} but subnet_ids has {len(self.subnet_ids)}: one subnet per AZ",
                )
            if len(self.subnet_ids) < 2:
                raise field_error("subnet_ids", "EKS needs subnets in at least two availability zones")
        return self

    @field_validator("vpc_cidr", "pods_cidr", "services_cidr", "master_cidr")
    @classmethod
    def _check_block(cls, value: str | None) -> str | None:
        return None if value is None else check_cidr(value)

    def gke_ranges(self) -> tuple[str, str, str]:
        """(pods, services, control plane) ranges of a GKE cluster."""
        return (
            self.pods_cidr or "172.16.0.0/14",
            self.services_cidr or "172.20.0.0/20",
            self.master_cidr or "172.21.0.0/28",
        )

    @field_validator("zones")
    @classmethod
    def _check_zones(cls, zones: list[str] | None) -> list[str] | None:
        if zones is not None and len(set(zones)) != len(zones):
            raise field_error("", "names a zone twice")
        return zones

    @field_validator("private_subnet_cidrs", "public_subnet_cidrs")
    @classmethod
    def _check_subnets(cls, value: list[str] | None) -> list[str] | None:
        for cidr in value or []:
            check_cidr(cidr)
        return value

    def subnets(self) -> tuple[list[str], list[str]]:
        """(private, public) CIDRs, one each per AZ: the given ones, or carved from the VPC block.

        Carving gives private subnets the large blocks (pods take VPC addresses
        under the VPC CNI) and packs the public ones into the last block.
        """
        vpc = parse_cidr(self.vpc_cidr)
        split = 2 if self.availability_zones <= 3 else 3
        blocks = list(vpc.subnets(prefixlen_diff=split))
        private = [str(b) for b in blocks[: self.availability_zones]]
        public = [str(b) for b in list(blocks[-1].subnets(prefixlen_diff=split))[: self.availability_zones]]
        return (self.private_subnet_cidrs or private, self.public_subnet_cidrs or public)

    @model_validator(mode="after")
    def _check_layout(self) -> NetworkSpec:
        if self.existing:
            return self
        if self.zones is not None and len(self.zones) != self.availability_zones:
            raise field_error(
                "zones", f"has {len(self.zones)} zone ids but availability_zones is {self.availability_zones}"
            )
        vpc = parse_cidr(self.vpc_cidr)
        if vpc.prefixlen > 24:
            raise field_error("vpc_cidr", f"'{self.vpc_cidr}' is too small for a cluster: use a /16 to /24 block")
        private, public = self.subnets()
        named: list[tuple[str, str]] = []
        for field, cidrs in (("private_subnet_cidrs", private), ("public_subnet_cidrs", public)):
            if len(cidrs) != self.availability_zones:
                raise field_error(
                    field,
                    f"has {len(cidrs)} CIDRs but availability_zones is {self.availability_zones}: give one per AZ",
                )
            for i, cidr in enumerate(cidrs):
                if not parse_cidr(cidr).subnet_of(vpc):
                    raise field_error(f"{field}[{i}]", f"'{cidr}' is not inside vpc_cidr {self.vpc_cidr}")
                named.append((f"{field}[{i}]", cidr))
        for field in ("pods_cidr", "services_cidr", "master_cidr"):
            if getattr(self, field) is not None:
                named.append((field, getattr(self, field)))
        if parse_cidr(self.gke_ranges()[2]).prefixlen != 28:
            raise field_error("master_cidr", "the GKE control plane range must be a /28")
        for i, (field, cidr) in enumerate(named):
            for other_field, other in named[:i]:
                if parse_cidr(cidr).overlaps(parse_cidr(other)):
                    raise field_error(field, f"'{cidr}' overlaps {other_field} '{other}'")
        return self
