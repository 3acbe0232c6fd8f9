"""What AWS resources cost, from the catalog: the AWS half of the cost estimate.

Pure functions of resource properties; no Pulumi import, so the policy pack can price a
plan without loading the AWS provider SDK.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from meshstack.core.kubernetes import in_extended_support, support_date, support_of
from meshstack.core.pricing import HOURS_PER_MONTH, PoolShape, Priced, PricingContext, count, mapping, quantity
from meshstack.core.resources import ResourceView
from meshstack.core.types import EKS_NODE_GROUP

POOL_TYPES = (EKS_NODE_GROUP,)
MARKETS = {"ON_DEMAND": "on-demand", "SPOT": "spot", "CAPACITY_BLOCK": "capacity block"}


class Services(BaseModel):
    """The `services:` prices of catalog/aws.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    eks_control_plane_per_hour: float = Field(ge=0)
    eks_extended_support_per_hour: float = Field(ge=0)
    nat_gateway_per_hour: float = Field(ge=0)
    public_ipv4_per_hour: float = Field(ge=0)
    vpc_interface_endpoint_per_az_hour: float = Field(ge=0)
    kms_key_per_month: float = Field(ge=0)
    ebs_gp3_per_gib_month: float = Field(ge=0)
    s3_standard_per_gib_month: float = Field(ge=0)
    efs_standard_per_gib_month: float = Field(ge=0)
    lustre_per_gib_month: dict[str, float]


def pool_shape(pool: ResourceView) -> PoolShape:
    props = pool.props
    scaling = mapping(props, "scalingConfig")
    types = props.get("instanceTypes")
    capacity = str(props.get("capacityType") or "ON_DEMAND")
    return PoolShape(
        str(types[0]) if isinstance(types, Sequence) and not isinstance(types, str) and types else "?",
        count(scaling.get("minSize")),
        count(scaling.get("desiredSize")) or 0,
        count(scaling.get("maxSize")),
        MARKETS.get(capacity, capacity.lower()),
    )


def price(r: ResourceView, ctx: PricingContext) -> Priced | None:
    """(description, hourly, peak hourly) for an AWS resource that costs money, else None."""
    prices: Services = ctx.services(Services)
    props = r.props
    if r.type == EKS_NODE_GROUP:
        disk = _root_volume_gib(props, ctx) * prices.ebs_gp3_per_gib_month / HOURS_PER_MONTH * ctx.storage_factor
        return ctx.pool(r, pool_shape(r), disk)
    if r.type == "aws:eks/cluster:Cluster":
        return _control_plane(props, prices, ctx)
    if r.type == "aws:ec2/natGateway:NatGateway":
        ctx.assume("NAT gateways: hourly charge only; data processed is not estimated")
        return Priced.flat("NAT gateway", prices.nat_gateway_per_hour * ctx.services_factor)
    if r.type == "aws:ec2/vpcEndpoint:VpcEndpoint" and props.get("vpcEndpointType") == "Interface":
        subnets = props.get("subnetIds")
        zones = len(subnets) if isinstance(subnets, list) else 0
        ctx.assume("interface endpoints: hourly per AZ only; data processed is not estimated")
        return Priced.flat(
            f"interface endpoint in {zones} AZs",
            zones * prices.vpc_interface_endpoint_per_az_hour * ctx.services_factor,
        )
    if r.type == "aws:ec2/eip:Eip":
        return Priced.flat("public IPv4 address", prices.public_ipv4_per_hour * ctx.services_factor)
    if r.type == "aws:kms/key:Key":
        return Priced.flat("KMS key", prices.kms_key_per_month / HOURS_PER_MONTH * ctx.services_factor)
    if r.type == "aws:fsx/lustreFileSystem:LustreFileSystem":
        return _lustre(props, prices, ctx)
    if r.type in ("aws:s3/bucket:Bucket", "aws:efs/fileSystem:FileSystem"):
        s3 = r.type == "aws:s3/bucket:Bucket"
        gib = ctx.expected_gib(r)
        per_gib = prices.s3_standard_per_gib_month if s3 else prices.efs_standard_per_gib_month
        ctx.assume(
            "S3 and EFS: storage at the spec's size_gib, standard class; requests and transfer are not estimated"
        )
        return Priced.flat(f"{'S3' if s3 else 'EFS'} {gib:g} GiB", gib * per_gib / HOURS_PER_MONTH * ctx.storage_factor)
    return None


def _control_plane(props: Mapping[str, Any], prices: Services, ctx: PricingContext) -> Priced:
    """EKS bills the extended-support rate once the cluster's version is past its standard support (as
    of support_date()) and the cluster kept it (EXTENDED); before that, or under STANDARD, the standard
    rate. The estimate says when a version's standard support ends, and what then happens."""
    version = str(props.get("version") or "")
    extended = mapping(props, "upgradePolicy").get("supportType") == "EXTENDED"
    on = support_date()
    support = support_of("aws", version)
    billed_extended = extended and in_extended_support("aws", version, on)
    if support is not None and not billed_extended:
        if extended:
            ctx.assume(
                f"EKS {version} leaves standard support on {support.end_of_standard}: with support_type EXTENDED "
                f"its control plane then costs ${prices.eks_extended_support_per_hour:.2f}/hour"
            )
        else:
            ctx.assume(
                f"EKS {version} leaves standard support on {support.end_of_standard}: with support_type STANDARD "
                "EKS then upgrades the control plane to the next version on its own"
            )
    rate = prices.eks_extended_support_per_hour if billed_extended else prices.eks_control_plane_per_hour
    label = "EKS control plane" + (" (extended support)" if billed_extended else "")
    return Priced.flat(label, rate * ctx.services_factor)


def _root_volume_gib(props: Mapping[str, Any], ctx: PricingContext) -> float:
    """The boot disk size is in the node group's launch template."""
    template = ctx.by_id(mapping(props, "launchTemplate").get("id"))
    if template is None:
        return 0.0
    mappings = template.props.get("blockDeviceMappings")
    return sum(
        quantity(mapping(m, "ebs").get("volumeSize"))
        for m in (mappings if isinstance(mappings, list) else [])
        if isinstance(m, Mapping)
    )


def _lustre(props: Mapping[str, Any], prices: Services, ctx: PricingContext) -> Priced:
    deployment = str(props.get("deploymentType", "SCRATCH_2"))
    throughput = count(props.get("perUnitStorageThroughput"))
    key = f"{deployment}-{throughput}" if throughput else deployment
    per_gib = prices.lustre_per_gib_month.get(key)
    gib = quantity(props.get("storageCapacity"))
    if per_gib is None:
        ctx.assume(f"FSx for Lustre {key}: no price in catalog, priced at 0")
        per_gib = 0.0
    return Priced.flat(f"FSx for Lustre {gib:g} GiB {key}", gib * per_gib / HOURS_PER_MONTH * ctx.storage_factor)
