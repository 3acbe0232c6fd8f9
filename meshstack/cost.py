"""Prices what a stack declares, from the catalog, resource by resource.

The estimate reads only resource properties, so the same code prices a recorded
preview and the resources the policy engine hands a stack policy: the cost the
pull-request comment shows is the cost the budget rules enforce.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.tags import EXPECTED_SIZE_LABEL, EXPECTED_SIZE_TAG
from meshstack.core.catalog import Catalog, load_catalog
from meshstack.core.pools import EKS_NODE_GROUP, GKE_NODE_POOL, pool_shape
from meshstack.core.resources import ResourceView

HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class CostItem:
    urn: str
    type: str
    name: str
    component: str
    description: str
    hourly_usd: float
    peak_hourly_usd: float

    @property
    def monthly_usd(self) -> float:
        return self.hourly_usd * HOURS_PER_MONTH

    def to_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "component": self.component,
            "description": self.description,
            "hourly_usd": round(self.hourly_usd, 4),
            "monthly_usd": round(self.monthly_usd, 2),
            "peak_hourly_usd": round(self.peak_hourly_usd, 4),
        }


@dataclass(frozen=True)
class CostReport:
    items: list[CostItem]
    price_date: str
    price_source: str
    region: str
    assumptions: list[str] = field(default_factory=list)

    @property
    def hourly_usd(self) -> float:
        return sum(i.hourly_usd for i in self.items)

    @property
    def monthly_usd(self) -> float:
        return self.hourly_usd * HOURS_PER_MONTH

    @property
    def peak_hourly_usd(self) -> float:
        """Every node group at its max size: what the autoscaler may reach."""
        return sum(i.peak_hourly_usd for i in self.items)

    @property
    def peak_monthly_usd(self) -> float:
        return self.peak_hourly_usd * HOURS_PER_MONTH

    def by_component(self) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for item in self.items:
            totals[item.component] += item.hourly_usd
        return dict(sorted(totals.items()))

    def to_json(self) -> dict[str, Any]:
        return {
            "hourly_usd": round(self.hourly_usd, 4),
            "monthly_usd": round(self.monthly_usd, 2),
            "peak_hourly_usd": round(self.peak_hourly_usd, 4),
            "peak_monthly_usd": round(self.peak_monthly_usd, 2),
            "currency": "USD",
            "price_date": self.price_date,
            "price_source": self.price_source,
            "region": self.region,
            "assumptions": self.assumptions,
            "by_component": {k: round(v, 4) for k, v in self.by_component().items()},
            "items": [i.to_json() for i in self.items],
        }


class _Pricer:
    def __init__(self, resources: Sequence[ResourceView], catalog: Catalog) -> None:
        self.catalog = catalog
        self.by_urn = {r.urn: r for r in resources}
        self.by_id = {str(r.props.get("id")): r for r in resources if r.props.get("id")}
        self.assumptions: set[str] = set()
        discounts = catalog.discounts
        self.instances = 1 - discounts.instances / 100
        self.storage = 1 - discounts.storage / 100
        self.services = 1 - discounts.services / 100

    def component(self, resource: ResourceView) -> str:
        parent = self.by_urn.get(resource.parent)
        while parent is not None and not parent.type.startswith("meshstack:"):
            parent = self.by_urn.get(parent.parent)
        return parent.name if parent is not None else resource.name

    def price(self, r: ResourceView) -> tuple[str, float, float] | None:
        """(description, hourly, peak hourly) for a resource that costs money, else None."""
        services, props = self.catalog.services, r.props
        if r.type.startswith("gcp:"):
            return self.gcp(r) if self.catalog.cloud == "gcp" else None
        if r.type == EKS_NODE_GROUP:
            return self.pool(r)
        if r.type == "aws:eks/cluster:Cluster":
            extended = (props.get("upgradePolicy") or {}).get("supportType") == "EXTENDED"
            rate = (services.eks_extended_support_per_hour if extended else services.eks_control_plane_per_hour) * (
                self.services
            )
            return ("EKS control plane" + (" (extended support)" if extended else ""), rate, rate)
        if r.type == "aws:ec2/natGateway:NatGateway":
            self.assumptions.add("NAT gateways: hourly charge only; data processed is not estimated")
            rate = services.nat_gateway_per_hour * self.services
            return ("NAT gateway", rate, rate)
        if r.type == "aws:ec2/eip:Eip":
            rate = services.public_ipv4_per_hour * self.services
            return ("public IPv4 address", rate, rate)
        if r.type == "aws:kms/key:Key":
            rate = services.kms_key_per_month / HOURS_PER_MONTH * self.services
            return ("KMS key", rate, rate)
        if r.type == "aws:fsx/lustreFileSystem:LustreFileSystem":
            return self.lustre(props)
        if r.type in ("aws:s3/bucket:Bucket", "aws:efs/fileSystem:FileSystem"):
            s3 = r.type == "aws:s3/bucket:Bucket"
            gib = float((props.get("tags") or {}).get(EXPECTED_SIZE_TAG, 0))
            per_gib = services.s3_standard_per_gib_month if s3 else services.efs_standard_per_gib_month
            self.assumptions.add(
                "S3 and EFS: storage at the spec's size_gib, standard class; requests and transfer are not estimated"
            )
            rate = gib * per_gib / HOURS_PER_MONTH * self.storage
            return (f"{'S3' if s3 else 'EFS'} {gib:g} GiB", rate, rate)
        return None

    def pool(self, r: ResourceView) -> tuple[str, float, float]:
        """Nodes at the market's price (TPU hosts with their chips), plus each node's boot disk."""
        shape = pool_shape(r)
        itype = self.catalog.instance_types.get(shape.instance_type)
        peak = shape.max_nodes if shape.max_nodes is not None else shape.desired_nodes
        if itype is None:
            self.assumptions.add(f"{shape.instance_type}: not in the catalog, priced at 0")
            return (f"{shape.desired_nodes} x {shape.instance_type} (unpriced)", 0.0, 0.0)
        hourly = itype.price_per_hour
        tpu = self.catalog.tpus.get(itype.accelerator)
        if tpu is not None:
            hourly += itype.accelerators * tpu.price_per_chip_hour
        if shape.market == "spot":
            hourly *= 1 - self.catalog.markets.spot_discount
            self.assumptions.add(
                f"spot: on-demand less {self.catalog.markets.spot_discount:.0%}, a typical discount; it moves hourly"
            )
        elif shape.market == "capacity block":
            if itype.capacity_block_price_per_hour is not None:
                hourly = itype.capacity_block_price_per_hour
            else:
                self.assumptions.add(
                    f"{shape.instance_type} capacity block: priced at on-demand (no block price in catalog)"
                )
            self.assumptions.add("capacity blocks are paid up front for the whole block, used or not")
        elif shape.market == "reservation":
            self.assumptions.add("reservations are billed at the on-demand rate, used or not")
        hourly = hourly * self.instances + self.disk_hourly(r)
        chips = f", {itype.accelerators} {itype.accelerator} chips each" if tpu is not None else ""
        return (
            f"{shape.desired_nodes} x {shape.instance_type} ({shape.market}{chips}), up to {peak}",
            shape.desired_nodes * hourly,
            peak * hourly,
        )

    def disk_hourly(self, r: ResourceView) -> float:
        """One node's boot disk: gp3 from the EKS launch template, pd-balanced on GKE."""
        services: Any = self.catalog.services
        if r.type == GKE_NODE_POOL:
            gib, per_gib = (
                float((r.props.get("nodeConfig") or {}).get("diskSizeGb", 0)),
                services.pd_balanced_per_gib_month,
            )
        else:
            gib, per_gib = self.root_volume_gib(r.props), services.ebs_gp3_per_gib_month
        return gib * per_gib / HOURS_PER_MONTH * self.storage

    def root_volume_gib(self, props: Mapping[str, Any]) -> float:
        template = self.by_id.get(str((props.get("launchTemplate") or {}).get("id")))
        if template is None:
            return 0.0
        return sum(
            float((m.get("ebs") or {}).get("volumeSize", 0)) for m in template.props.get("blockDeviceMappings") or []
        )

    def gcp(self, r: ResourceView) -> tuple[str, float, float] | None:
        services: Any = self.catalog.services
        props = r.props
        if r.type == GKE_NODE_POOL:
            return self.pool(r)
        if r.type == "gcp:container/cluster:Cluster":
            rate = services.gke_control_plane_per_hour * self.services
            return ("GKE control plane", rate, rate)
        if r.type == "gcp:compute/routerNat:RouterNat":
            self.assumptions.add("Cloud NAT: gateway hours only; data processed is not estimated")
            rate = services.cloud_nat_gateway_per_hour * self.services
            return ("Cloud NAT gateway", rate, rate)
        if r.type == "gcp:kms/cryptoKey:CryptoKey":
            rate = services.kms_key_per_month / HOURS_PER_MONTH * self.services
            return ("Cloud KMS key", rate, rate)
        if r.type == "gcp:storage/bucket:Bucket":
            gib = float((props.get("labels") or {}).get(EXPECTED_SIZE_LABEL, 0))
            self.assumptions.add("GCS: storage at the spec's size_gib, standard class; operations are not estimated")
            rate = gib * services.gcs_standard_per_gib_month / HOURS_PER_MONTH * self.storage
            return (f"GCS {gib:g} GiB", rate, rate)
        if r.type == "gcp:filestore/instance:Instance":
            shares = props.get("fileShares") or {}
            gib = float(shares.get("capacityGb", 0))
            self.assumptions.add("Filestore: priced at the basic HDD rate")
            rate = gib * services.filestore_basic_hdd_per_gib_month / HOURS_PER_MONTH * self.storage
            return (f"Filestore {gib:g} GiB {props.get('tier', '')}", rate, rate)
        return None

    def lustre(self, props: Mapping[str, Any]) -> tuple[str, float, float]:
        deployment = str(props.get("deploymentType", "SCRATCH_2"))
        throughput = props.get("perUnitStorageThroughput")
        key = f"{deployment}-{int(throughput)}" if throughput else deployment
        per_gib = self.catalog.services.lustre_per_gib_month.get(key)
        gib = float(props.get("storageCapacity", 0))
        if per_gib is None:
            self.assumptions.add(f"FSx for Lustre {key}: no price in catalog, priced at 0")
            per_gib = 0.0
        rate = gib * per_gib / HOURS_PER_MONTH * self.storage
        return (f"FSx for Lustre {gib:g} GiB {key}", rate, rate)


def estimate(resources: Iterable[ResourceView], catalog: Catalog | None = None) -> CostReport:
    catalog = catalog or load_catalog()
    resources = list(resources)
    pricer = _Pricer(resources, catalog)
    items = []
    for r in resources:
        priced = pricer.price(r)
        if priced is not None:
            description, hourly, peak = priced
            items.append(CostItem(r.urn, r.type, r.name, pricer.component(r), description, hourly, peak))
    items.sort(key=lambda i: (-i.hourly_usd, i.urn))
    return CostReport(
        items=items,
        price_date=catalog.prices.date,
        price_source=catalog.prices.source,
        region=catalog.prices.region,
        assumptions=sorted(pricer.assumptions),
    )


@dataclass(frozen=True)
class CostChange:
    key: str
    description: str
    before_hourly_usd: float
    after_hourly_usd: float

    @property
    def delta_hourly_usd(self) -> float:
        return self.after_hourly_usd - self.before_hourly_usd

    def to_json(self) -> dict[str, Any]:
        return {
            "resource": self.key,
            "description": self.description,
            "before_hourly_usd": round(self.before_hourly_usd, 4),
            "after_hourly_usd": round(self.after_hourly_usd, 4),
            "delta_hourly_usd": round(self.delta_hourly_usd, 4),
            "delta_monthly_usd": round(self.delta_hourly_usd * HOURS_PER_MONTH, 2),
        }


def _key(item: CostItem, stack: str) -> str:
    """A resource's identity across two stacks: its type and its name without the stack's prefix."""
    name = item.name.removeprefix(f"{stack}-") if stack else item.name
    return f"{item.type.rsplit(':', 1)[-1]} {name}"


def diff(before: CostReport, before_stack: str, after: CostReport, after_stack: str) -> list[CostChange]:
    """What changed, resource by resource, most expensive change first; unchanged items are left out."""
    old = {_key(i, before_stack): i for i in before.items}
    new = {_key(i, after_stack): i for i in after.items}
    changes = []
    for key in old.keys() | new.keys():
        a, b = old.get(key), new.get(key)
        before_usd, after_usd = (a.hourly_usd if a else 0.0), (b.hourly_usd if b else 0.0)
        description = (b or a).description if b or a else ""
        if a is None or b is None or abs(after_usd - before_usd) > 1e-9 or a.description != b.description:
            changes.append(CostChange(key, description, before_usd, after_usd))
    return sorted(changes, key=lambda c: (-abs(c.delta_hourly_usd), c.key))
