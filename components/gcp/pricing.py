"""What Google Cloud resources cost, from the catalog: the GCP half of the cost estimate.

Pure functions of resource properties; no Pulumi import.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from meshstack.core.pricing import HOURS_PER_MONTH, PoolShape, Priced, PricingContext, count, mapping, quantity
from meshstack.core.resources import ResourceView
from meshstack.core.types import GKE_NODE_POOL

POOL_TYPES = (GKE_NODE_POOL,)
# The markets a node pool's compute class falls back to after the pool's own, in order and joined by `_`,
# as a Compute Engine label on its nodes (label values take no spaces).
FALLBACK_LABEL = "meshstack-fallback"


class Services(BaseModel):
    """The `services:` prices of catalog/gcp.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gke_control_plane_per_hour: float = Field(ge=0)
    cloud_nat_per_vm_hour: float = Field(ge=0)
    cloud_nat_max_per_hour: float = Field(ge=0)
    public_ipv4_per_hour: float = Field(ge=0)
    kms_key_per_month: float = Field(ge=0)
    gcs_standard_per_gib_month: float = Field(ge=0)
    filestore_per_gib_month: dict[str, float]
    pd_balanced_per_gib_month: float = Field(ge=0)


def pool_shape(pool: ResourceView) -> PoolShape:
    """GKE counts nodes per zone (`maxNodeCount`), or over the pool (`totalMaxNodeCount`); the shape counts
    them over all of the pool's zones."""
    props = pool.props
    config, scaling = mapping(props, "nodeConfig"), mapping(props, "autoscaling")
    locations = props.get("nodeLocations")
    zones = max(len(locations), 1) if isinstance(locations, Sequence) and not isinstance(locations, str) else 1
    initial = props.get("initialNodeCount")
    per_zone = count(initial if initial is not None else props.get("nodeCount")) or 0
    # Without autoscaling a GKE pool stays at its node count.
    per_zone_max, per_zone_min = count(scaling.get("maxNodeCount")), count(scaling.get("minNodeCount"))
    total_max, total_min = count(scaling.get("totalMaxNodeCount")), count(scaling.get("totalMinNodeCount"))
    maximum = total_max if total_max is not None else (per_zone if per_zone_max is None else per_zone_max) * zones
    minimum = total_min if total_min is not None else (per_zone if per_zone_min is None else per_zone_min) * zones
    if config.get("spot") is True:
        market = "spot"
    elif config.get("reservationAffinity"):
        market = "reservation"
    else:
        market = "on-demand"
    fallback = mapping(config, "resourceLabels").get(FALLBACK_LABEL)
    return PoolShape(
        str(config.get("machineType", "?")),
        minimum,
        per_zone * zones,
        maximum,
        market,
        tuple(str(fallback).split("_")) if isinstance(fallback, str) and fallback else (),
    )


def price(r: ResourceView, ctx: PricingContext) -> Priced | None:
    prices: Services = ctx.services(Services)
    props = r.props
    if r.type == GKE_NODE_POOL:
        gib = quantity(mapping(props, "nodeConfig").get("diskSizeGb"))
        return ctx.pool(r, pool_shape(r), gib * prices.pd_balanced_per_gib_month / HOURS_PER_MONTH * ctx.storage_factor)
    if r.type == "gcp:container/cluster:Cluster":
        return Priced.flat("GKE control plane", prices.gke_control_plane_per_hour * ctx.services_factor)
    if r.type == "gcp:compute/routerNat:RouterNat":
        return _cloud_nat(prices, ctx)
    if r.type == "gcp:kms/cryptoKey:CryptoKey":
        return Priced.flat("Cloud KMS key", prices.kms_key_per_month / HOURS_PER_MONTH * ctx.services_factor)
    if r.type == "gcp:storage/bucket:Bucket":
        gib = ctx.expected_gib(r)
        ctx.assume("GCS: storage at the spec's size_gib, standard class; operations are not estimated")
        return Priced.flat(
            f"GCS {gib:g} GiB", gib * prices.gcs_standard_per_gib_month / HOURS_PER_MONTH * ctx.storage_factor
        )
    if r.type == "gcp:filestore/instance:Instance":
        gib = quantity(mapping(props, "fileShares").get("capacityGb"))
        tier = str(props.get("tier", ""))
        rate = prices.filestore_per_gib_month.get(tier)
        if rate is None:
            ctx.assume(f"Filestore {tier or '(no tier)'}: no price in the catalog, priced at 0")
            rate = 0.0
        return Priced.flat(f"Filestore {gib:g} GiB {tier}", gib * rate / HOURS_PER_MONTH * ctx.storage_factor)
    return None


def _cloud_nat(prices: Services, ctx: PricingContext) -> Priced:
    """Charged per VM behind the gateway, up to a cap per gateway-hour, plus the address it allocates."""
    ctx.assume(
        "Cloud NAT: per-VM gateway charge over the stack's nodes and one auto-allocated address; "
        "data processed is not estimated"
    )
    fleet = ctx.fleet()

    def hourly(vms: int) -> float:
        gateway = min(vms * prices.cloud_nat_per_vm_hour, prices.cloud_nat_max_per_hour)
        return (gateway + prices.public_ipv4_per_hour) * ctx.services_factor

    return Priced(
        f"Cloud NAT for {fleet.declared} VMs (up to {fleet.peak}) and its address",
        hourly(fleet.declared),
        hourly(fleet.peak),
        hourly(fleet.idle),
        hourly(fleet.running),
    )
