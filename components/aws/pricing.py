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

KARPENTER_NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
POOL_TYPES = (EKS_NODE_GROUP, KARPENTER_NODE_POOL)
MARKETS = {"ON_DEMAND": "on-demand", "SPOT": "spot", "CAPACITY_BLOCK": "capacity-block"}
# A NodePool's capacity types in the order Karpenter takes them; `reserved` is priced as a reservation
# unless meshstack's annotation says it is a capacity block.
KARPENTER_MARKETS = {"reserved": "reservation", "spot": "spot", "on-demand": "on-demand"}
# Where the components write a pool's market order: a NodePool's annotation (Karpenter's capacity types
# cannot tell a capacity block from a reservation), a fallback node group's tag (the markets after its own).
MARKETS_ANNOTATION = "meshstack.io/markets"
FALLBACK_TAG = "meshstack:fallback"


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


def _first(values: Any) -> str:
    return str(values[0]) if isinstance(values, Sequence) and not isinstance(values, str) and values else "?"


def pool_shape(pool: ResourceView) -> PoolShape:
    props = pool.props
    if pool.type == KARPENTER_NODE_POOL:
        return _karpenter_shape(props)
    scaling = mapping(props, "scalingConfig")
    capacity = str(props.get("capacityType") or "ON_DEMAND")
    fallback = mapping(props, "tags").get(FALLBACK_TAG)
    return PoolShape(
        _first(props.get("instanceTypes")),
        count(scaling.get("minSize")),
        count(scaling.get("desiredSize")) or 0,
        count(scaling.get("maxSize")),
        MARKETS.get(capacity, capacity.lower()),
        tuple(str(fallback).split()) if isinstance(fallback, str) else (),
    )


def _karpenter_shape(props: Mapping[str, Any]) -> PoolShape:
    """A NodePool keeps no nodes (min and desired 0) and grows to `limits.nodes` (None: unbounded), on its
    first instance type and market; a NodePool meshstack did not write is read from its capacity types."""
    spec = mapping(props, "spec")
    template = mapping(mapping(spec, "template"), "spec")
    listed = template.get("requirements")
    wanted = {
        str(r.get("key")): r.get("values")
        for r in (listed if isinstance(listed, list) else [])
        if isinstance(r, Mapping) and r.get("operator") == "In"
    }
    annotated = mapping(mapping(props, "metadata"), "annotations").get(MARKETS_ANNOTATION)
    if isinstance(annotated, str) and annotated.split():
        markets = annotated.split()
    else:
        types = wanted.get("karpenter.sh/capacity-type")
        listed = {str(t) for t in types} if isinstance(types, list) else {"on-demand"}
        markets = [m for t, m in KARPENTER_MARKETS.items() if t in listed] or ["on-demand"]
    return PoolShape(
        _first(wanted.get("node.kubernetes.io/instance-type")),
        0,
        0,
        count(mapping(spec, "limits").get("nodes")),
        markets[0],
        tuple(markets[1:]),
    )


def price(r: ResourceView, ctx: PricingContext) -> Priced | None:
    """(description, hourly, peak hourly) for an AWS resource that costs money, else None."""
    prices: Services = ctx.services(Services)
    props = r.props
    if r.type == EKS_NODE_GROUP:
        disk = _root_volume_gib(props, ctx) * prices.ebs_gp3_per_gib_month / HOURS_PER_MONTH * ctx.storage_factor
        return ctx.pool(r, pool_shape(r), disk)
    if r.type == KARPENTER_NODE_POOL:
        ctx.assume("Karpenter NodePools: nodes at their first instance type and market; root volumes not priced")
        return ctx.pool(r, pool_shape(r), 0.0)
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
