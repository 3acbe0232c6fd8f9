"""Kubernetes clusters and their node pools, sized by what accelerator they carry."""

from __future__ import annotations

import datetime
import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from meshstack.core.catalog import Catalog, InstanceType
from meshstack.core.gke_node_pools import node_pool_keys, too_long
from meshstack.core.kubernetes import SUPPORTED_VERSIONS, SupportType
from meshstack.core.spec.base import (
    DNS_LABEL,
    SpecModel,
    catalog_from,
    check_cidr,
    check_label,
    check_labels,
    field_error,
)
from meshstack.core.validation import check_unique
from meshstack.core.vocabulary import LOG_TYPES, PINNED_MARKETS, FallbackMarket, LogType, Market, TaintEffect

Autoscaler = Literal["cluster-autoscaler", "karpenter"]
# The order Karpenter takes a NodePool's capacity types in, whatever order they are listed in: reserved
# (capacity reservations and blocks), then spot, then on-demand (karpenter-provider-aws v1.14.1,
# website/content/en/docs/concepts/nodepools.md "capacity type"; read 2026-12-08).
KARPENTER_ORDER: dict[str, int] = {"capacity-block": 0, "reservation": 0, "spot": 1, "on-demand": 2}


class Taint(SpecModel):
    """A node taint: pods without a matching toleration are kept off (or evicted from) the pool's nodes."""

    key: str = Field(description="A Kubernetes label key (prefix/name).")
    value: str = Field(default="", description="A Kubernetes label value; empty by default.")
    effect: TaintEffect = Field(
        default="NoSchedule",
        description="NoSchedule keeps new pods off, PreferNoSchedule avoids the nodes, NoExecute also evicts.",
    )

    @model_validator(mode="after")
    def _check(self) -> Taint:
        check_label(self.key, self.value)
        return self


class NodePool(SpecModel):
    """Identical nodes of one accelerator, on one market (and its fallbacks), scaled between min and max."""

    name: str = Field(pattern=DNS_LABEL, description="A DNS label, unique in the cluster; workloads name it.")
    accelerator: str = Field(
        description="What the nodes carry: an accelerator of the stack's cloud's catalog (validation lists them), "
        "or cpu."
    )
    accelerators_per_node: int | None = Field(
        default=None, ge=0, description="Picks the instance type with that many; taken from instance_type when omitted."
    )
    instance_type: str | None = Field(
        default=None,
        description="A catalog instance type; the cheapest with accelerators_per_node when omitted. With "
        "instance_types, the first of them.",
    )
    instance_types: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Several catalog instance types with the same accelerator and count per node, in the order "
        "they are tried (the first is priced): capacity of one type runs out where another's is free. Instead "
        "of instance_type; after validation it lists every type, instance_type its first. EKS: one node group "
        "(or NodePool) lists them all; GKE: a node pool each, tried in this order by a custom compute class.",
    )
    min_nodes: int = Field(default=0, ge=0, description="Nodes kept however idle.")
    max_nodes: int = Field(ge=1, description="Required: an unbounded pool is an unbounded bill.")
    desired_nodes: int | None = Field(default=None, ge=0, description="Defaults to min_nodes.")
    market: Market = Field(default="on-demand", description="The market the pool takes its nodes from first.")
    fallback: list[FallbackMarket] = Field(
        default_factory=list,
        description="Markets tried in order when `market` has no capacity (a reservation that is full or over, "
        "spot that is not to be had): e.g. [spot, on-demand] after a capacity block. EKS: a node group per "
        "market, ordered by the cluster-autoscaler's priority expander (or Karpenter's capacity types); GKE: a "
        "node pool per market and type, ordered by a custom compute class.",
    )
    reservation_id: str | None = Field(
        default=None, description="The capacity block or reservation to launch into (AWS: cr-..., GCP: its name)."
    )
    zone: str | None = Field(
        default=None,
        description="Where the pool's nodes run: AWS a zone id of network.zones (use1-az4), GCP a zone of the "
        "region (us-east5-b; the stack's zone when omitted). Capacity blocks and reservations sit in one zone.",
    )
    topology: str | None = Field(default=None, description="TPU slice topology, e.g. 2x4 or 4x4x4 (TPUs only).")
    slices: int = Field(default=1, ge=1, description="TPU slices of that topology, one node pool each (TPUs only).")
    efa: bool = Field(default=False, description="Attach one EFA interface per network card the type has.")
    placement_group: bool = Field(default=False, description="Launch into a cluster placement group (one AZ).")
    reserved_nodes: int | None = Field(
        default=None,
        ge=1,
        description="Instances the capacity block or reservation holds (hosts for TPUs, all slices together); "
        "a job needing more can never start.",
    )
    root_volume_gib: int = Field(default=200, ge=20, le=16384, description="Each node's boot disk (images, logs).")
    labels: dict[str, str] = Field(
        default_factory=dict, description="Node labels beside meshstack's own (pool, accelerator, count)."
    )
    taints: list[Taint] = Field(
        default_factory=list,
        description="Node taints; an accelerator pool also gets NoSchedule on its device resource unless a taint "
        "here has that key.",
    )

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        return check_labels(labels)

    @field_validator("accelerator")
    @classmethod
    def _known_accelerator(cls, accelerator: str, info: ValidationInfo) -> str:
        known = sorted(catalog_from(info).accelerators)
        if accelerator not in known:
            raise field_error("", f"unknown accelerator '{accelerator}': allowed are {', '.join(known)}")
        return accelerator

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> NodePool:
        catalog = catalog_from(info)
        if catalog.is_tpu(self.accelerator):
            if self.instance_types is not None:
                raise field_error("instance_types", "a TPU slice runs on the one machine type its topology fixes")
            self._resolve_tpu(catalog)
        else:
            if self.topology is not None or self.slices != 1:
                raise field_error("topology", f"topology and slices apply to TPU accelerators, not {self.accelerator}")
            self._resolve_instance(catalog)
        self.instance_types = self.instance_types or [str(self.instance_type)]
        for i, name in enumerate(self.instance_types):
            self._check_type(name, catalog.instance_types[name], i)
        self._check_capacity()
        self._check_market(catalog)
        self._check_fallback(catalog)
        return self

    def _type_field(self, index: int) -> str:
        return f"instance_types[{index}]" if len(self.instance_types or []) > 1 else "instance_type"

    def _check_type(self, name: str, itype: InstanceType, index: int) -> None:
        """What every listed type must offer the pool: a price, the first market, EFA where asked."""
        if itype.price_per_hour is None:
            raise field_error(
                self._type_field(index),
                f"{name} has no price in the catalog, so nothing about this stack's cost could be "
                f"trusted: give one in an override file (instance_types: {{{name}: "
                "{price_per_hour: ...}}, listed in MESHSTACK_CATALOG)",
            )
        if self.market == "spot" and not itype.spot:
            raise field_error("market", f"{name} cannot be had as spot capacity: use on-demand or a reservation")
        if self.efa and not itype.supports_efa:
            raise field_error("efa", f"{name} has no EFA support: turn efa off or pick an EFA-capable instance type")

    def _check_fallback(self, catalog: Catalog) -> None:
        """Each fallback market is offered by the cloud, sold for every listed type, and comes once."""
        if catalog.cloud == "gcp":
            self._check_gke_order(catalog)
        if not self.fallback:
            return
        seen: list[str] = [self.market]
        for i, market in enumerate(self.fallback):
            if market in seen:
                raise field_error(f"fallback[{i}]", f"'{market}' is already in the pool's market order")
            seen.append(market)
            if market not in catalog.facts.markets:
                raise field_error(f"fallback[{i}]", f"{catalog.cloud.upper()} does not offer '{market}'")
            unsold = [n for n in self.instance_types or [] if market == "spot" and not catalog.instance_types[n].spot]
            if market == "spot" and catalog.is_tpu(self.accelerator) and not catalog.tpus[self.accelerator].spot:
                unsold = [self.accelerator]
            if unsold:
                raise field_error(f"fallback[{i}]", f"{', '.join(unsold)} cannot be had as spot capacity")

    def _check_gke_order(self, catalog: Catalog) -> None:
        """What a GKE compute class can try in order: node pools of one machine type and one market each."""
        types = self.instance_types or []
        if self.fallback and catalog.is_tpu(self.accelerator):
            generation = catalog.tpus[self.accelerator]
            if self.slices > 1 or generation.topologies[str(self.topology)].hosts > 1:
                raise field_error(
                    "fallback",
                    "a TPU pool of several slices, or of a multi-host slice, is a node pool per slice created and "
                    "removed whole, which a compute class cannot fall back between: use a single-host topology "
                    "with one slice, or one market",
                )
        if self.market in PINNED_MARKETS and len(types) > 1 and not self.fallback:
            raise field_error(
                "instance_types[1]",
                f"a GKE reservation holds one machine type ({types[0]}): the other types would never launch; "
                "give them a market to fall back to (fallback: [on-demand]) or list one type",
            )

    def sizing_type(self, catalog: Catalog) -> str:
        """The smallest listed type: a pod sized for it fits whichever type the pool launches."""
        types = self.instance_types or [str(self.instance_type)]
        return min(types, key=lambda n: (catalog.instance_types[n].vcpus, catalog.instance_types[n].memory_gib))

    @property
    def markets(self) -> list[str]:
        """The market order: `market`, then its fallbacks."""
        return [self.market, *self.fallback]

    def _resolve_instance(self, catalog: Catalog) -> None:
        if self.instance_types is not None:
            self._resolve_several(catalog)
            return
        if self.instance_type is None:
            counts = ", ".join(map(str, catalog.per_node_counts(self.accelerator)))
            if self.accelerators_per_node is None and self.accelerator != "cpu":
                raise field_error(
                    "accelerators_per_node",
                    f"say how many {self.accelerator} per node ({counts}) or name an instance_type",
                )
            choices = catalog.instance_types_for(self.accelerator, self.accelerators_per_node)
            if not choices:
                raise field_error(
                    "accelerators_per_node",
                    f"no instance type carries {self.accelerators_per_node} {self.accelerator} per node: "
                    f"allowed are {counts}",
                )
            self.instance_type = choices[0]
        self._resolve_instance_type(catalog)

    def _resolve_instance_type(self, catalog: Catalog) -> None:
        """instance_type is a catalog type carrying the pool's accelerator, as many per node as asked."""
        itype = catalog.instance_types.get(str(self.instance_type))
        if itype is None:
            allowed = catalog.instance_types_for(self.accelerator)
            raise field_error(
                "instance_type",
                f"unknown instance type '{self.instance_type}': for {self.accelerator} "
                f"allowed are {', '.join(allowed)}",
            )
        if itype.accelerator != self.accelerator:
            raise field_error(
                "instance_type", f"{self.instance_type} carries {itype.accelerator}, not {self.accelerator}"
            )
        if self.accelerators_per_node is None:
            self.accelerators_per_node = itype.accelerators
        elif self.accelerators_per_node != itype.accelerators:
            raise field_error(
                "accelerators_per_node",
                f"{self.instance_type} has {itype.accelerators} {self.accelerator} per node, "
                f"not {self.accelerators_per_node}",
            )

    def _resolve_several(self, catalog: Catalog) -> None:
        """Several types stand for one: the same accelerator and count, so a pod sized for one fits every other."""
        listed = self.instance_types or []
        if self.instance_type is not None:
            raise field_error("instance_type", "give instance_type or instance_types, not both")
        for i, name in enumerate(listed):
            at = f"instance_types[{i}]"
            itype = catalog.instance_types.get(name)
            if itype is None:
                allowed = ", ".join(catalog.instance_types_for(self.accelerator))
                raise field_error(at, f"unknown instance type '{name}': for {self.accelerator} allowed are {allowed}")
            if name in listed[:i]:
                raise field_error(at, f"{name} is listed twice")
            if itype.accelerator != self.accelerator:
                raise field_error(
                    at,
                    f"{name} carries {itype.accelerator}, not {self.accelerator}: a pool's types share one accelerator",
                )
            if self.accelerators_per_node is None:
                self.accelerators_per_node = itype.accelerators
            elif itype.accelerators != self.accelerators_per_node:
                raise field_error(
                    at,
                    f"{name} has {itype.accelerators} {self.accelerator} per node, not {self.accelerators_per_node}: "
                    "a pool's types carry as many each",
                )
        self.instance_type = listed[0]
        cards = {catalog.instance_types[n].efa_interfaces for n in listed}
        if self.efa and len(cards) > 1:
            counts = ", ".join(f"{n} {catalog.instance_types[n].efa_interfaces}" for n in listed)
            raise field_error(
                "instance_types",
                f"with efa the types must have as many EFA interfaces ({counts}): one launch template attaches them",
            )

    def _resolve_tpu(self, catalog: Catalog) -> None:
        """A TPU pool is one slice (per `slices`): its topology fixes the machine type and the host count."""
        generation = catalog.tpus[self.accelerator]
        allowed = ", ".join(generation.topologies)
        if self.topology is None:
            raise field_error("topology", f"{self.accelerator} needs a topology: one of {allowed}")
        shape = generation.topologies.get(self.topology)
        if shape is None:
            raise field_error("topology", f"{self.accelerator} has no topology '{self.topology}': one of {allowed}")
        if self.instance_type is not None and self.instance_type != shape.machine_type:
            raise field_error(
                "instance_type", f"a {self.topology} {self.accelerator} slice runs on {shape.machine_type}"
            )
        per_host = shape.chips // shape.hosts
        if self.accelerators_per_node is not None and self.accelerators_per_node != per_host:
            raise field_error("accelerators_per_node", f"a {self.topology} slice has {per_host} chips per host")
        self.instance_type, self.accelerators_per_node = shape.machine_type, per_host
        if shape.hosts > 1:
            if self.max_nodes != shape.hosts:
                raise field_error(
                    "max_nodes",
                    f"a {self.topology} {self.accelerator} slice has {shape.hosts} hosts: set max_nodes to "
                    f"{shape.hosts} (a multi-host slice is created and removed whole)",
                )
            if self.min_nodes not in (0, shape.hosts):
                raise field_error("min_nodes", f"a multi-host slice scales between 0 and {shape.hosts} hosts")
        if self.market == "spot" and not generation.spot:
            raise field_error("market", f"{self.accelerator} cannot be had as spot capacity")

    def _check_market(self, catalog: Catalog) -> None:
        facts = catalog.facts
        if self.market not in facts.markets:
            raise field_error(
                "market", f"{catalog.cloud.upper()} does not offer '{self.market}': use {', '.join(facts.markets)}"
            )
        if self.reservation_id is None:
            return
        if not re.match(facts.reservation_id_pattern, self.reservation_id):
            raise field_error(
                "reservation_id",
                f"'{self.reservation_id}' is not a {catalog.cloud.upper()} reservation id "
                f"such as {facts.reservation_id_example}",
            )

    def _check_capacity(self) -> None:
        if self.min_nodes > self.max_nodes:
            raise field_error("min_nodes", f"min_nodes {self.min_nodes} is greater than max_nodes {self.max_nodes}")
        if self.desired_nodes is not None and self.desired_nodes > self.max_nodes:
            raise field_error("desired_nodes", f"desired_nodes {self.desired_nodes} exceeds max_nodes {self.max_nodes}")
        if self.desired_nodes is not None and self.desired_nodes < self.min_nodes:
            raise field_error(
                "desired_nodes", f"desired_nodes {self.desired_nodes} is below min_nodes {self.min_nodes}"
            )
        if self.market == "capacity-block":
            self._check_capacity_block()
        needs_id = self.market in PINNED_MARKETS
        if needs_id and self.reservation_id is None:
            raise field_error(
                "reservation_id", f"market '{self.market}' needs the reservation id (cr-...) it launches into"
            )
        if not needs_id and self.reservation_id is not None:
            raise field_error(
                "reservation_id", f"only capacity-block and reservation markets take an id; market is '{self.market}'"
            )
        if not needs_id and self.reserved_nodes is not None:
            raise field_error(
                "reserved_nodes",
                f"only capacity-block and reservation markets hold instances; market is '{self.market}'",
            )

    def _check_capacity_block(self) -> None:
        """A capacity block is a reservation of placed instances that exists only while the block runs
        (EC2 User Guide, "Capacity Blocks for ML", read 2026-11-25)."""
        if self.placement_group:
            raise field_error(
                "placement_group",
                "a capacity block places its instances itself: a cluster placement group on top adds constraints "
                "outside the reservation and launches fail; remove placement_group",
            )
        if self.reserved_nodes is not None and self.max_nodes != self.reserved_nodes:
            raise field_error(
                "max_nodes",
                f"a capacity block of {self.reserved_nodes} instances is paid for whole, used or not: set max_nodes "
                f"to {self.reserved_nodes} (not {self.max_nodes}) so the pool can use what is paid for and the "
                "estimate counts the whole block",
            )
        if self.min_nodes or self.desired_nodes:
            field = "min_nodes" if self.min_nodes else "desired_nodes"
            raise field_error(
                field,
                "a capacity-block pool starts at 0 nodes: instances launch only while the block is active. The "
                "cluster-autoscaler adds them for pending pods then; or raise desired_nodes once the block starts",
            )

    @property
    def desired(self) -> int:
        return self.min_nodes if self.desired_nodes is None else self.desired_nodes

    @property
    def capacity_nodes(self) -> int:
        """Nodes the pool can hold at once: max_nodes, times the slices of a TPU pool."""
        return self.max_nodes * self.slices


DEFAULT_QUEUE = "default"
Weekday = Literal["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
WEEKDAYS: tuple[Weekday, ...] = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# GKE's rules for a recurring window (GKE "Maintenance windows and exclusions", read 2026-11-26):
# at least 48 hours of availability in any 32 days, in stretches of at least 4 hours.
MIN_WINDOW_HOURS = 4
MIN_HOURS_PER_32_DAYS = 48


class MaintenanceExclusion(SpecModel):
    """A stretch (a long training run) when GKE makes no minor or node upgrades: no slice is recreated."""

    name: str = Field(pattern=DNS_LABEL, description="A DNS label, unique among the cluster's exclusions.")
    start: str = Field(description="RFC 3339, with its offset: 2026-12-01T00:00:00Z.")
    end: str = Field(description="RFC 3339, with its offset.")

    @field_validator("start", "end")
    @classmethod
    def _instant(cls, value: str) -> str:
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise field_error("", f"'{value}' is not an RFC 3339 time such as 2026-12-01T00:00:00Z") from None
        if parsed.tzinfo is None:
            raise field_error("", "give the offset (2026-12-01T00:00:00Z): GKE reads it as UTC otherwise")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceExclusion:
        if self.end_utc <= self.start_utc:
            raise field_error("end", f"{self.end} is not after start {self.start}")
        return self

    @property
    def start_utc(self) -> datetime.datetime:
        return datetime.datetime.fromisoformat(self.start).astimezone(datetime.UTC)

    @property
    def end_utc(self) -> datetime.datetime:
        return datetime.datetime.fromisoformat(self.end).astimezone(datetime.UTC)


class MaintenanceSpec(SpecModel):
    """When GKE may upgrade the control plane and nodes (an upgrade recreates a TPU slice, killing the
    job on it). EKS has no windows: its node groups change only when the stack changes, and its control
    plane only at the end of the version's support (see ClusterSpec.support_type)."""

    days: list[Weekday] = Field(
        default_factory=lambda: list[Weekday](["SA", "SU"]),
        min_length=1,
        description="The window's weekdays (MO ... SU).",
    )
    start_utc: str = Field(default="02:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM, UTC.")
    hours: int = Field(
        default=6,
        ge=MIN_WINDOW_HOURS,
        le=24,
        description=f"The window's length; with `days`, at least {MIN_HOURS_PER_32_DAYS} hours in any 32 days.",
    )
    exclusions: list[MaintenanceExclusion] = Field(
        default_factory=list, description="Stretches with no minor or node upgrade (a long training run)."
    )

    @model_validator(mode="after")
    def _enough(self) -> MaintenanceSpec:
        per_32_days = len(set(self.days)) * self.hours * 32 / 7
        if per_32_days < MIN_HOURS_PER_32_DAYS:
            raise field_error(
                "hours",
                f"{len(set(self.days))} day(s) of {self.hours} h give {per_32_days:.0f} h in 32 days; GKE needs "
                f"{MIN_HOURS_PER_32_DAYS}: add days or hours",
            )
        check_unique(((f"exclusions[{i}].name", e.name) for i, e in enumerate(self.exclusions)), "exclusion")
        return self

    def recurring_window(self) -> dict[str, str]:
        """GKE's recurring window: a first occurrence (any past date on the first listed day) and an RRULE."""
        first = datetime.date(2025, 1, 6) + datetime.timedelta(days=WEEKDAYS.index(self.days[0]))
        hour, minute = (int(x) for x in self.start_utc.split(":"))
        start = datetime.datetime(first.year, first.month, first.day, hour, minute, tzinfo=datetime.UTC)
        end = start + datetime.timedelta(hours=self.hours)
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        ordered = sorted(set(self.days), key=WEEKDAYS.index)
        return {
            "start_time": start.strftime(stamp),
            "end_time": end.strftime(stamp),
            "recurrence": f"FREQ=WEEKLY;BYDAY={','.join(ordered)}",
        }


class QueueSpec(SpecModel):
    """A Kueue ClusterQueue: how much of the cluster's pools the jobs sent to it may hold at once."""

    name: str = Field(pattern=DNS_LABEL, description="A DNS label, unique in the cluster; training workloads name it.")
    nodes: dict[str, int] | None = Field(
        default=None,
        description="Nominal quota in nodes per pool (by pool name; hosts for TPU pools, all slices together). "
        "Omitted: every pool whole. A pool left out gets no quota.",
    )
    cohort: str | None = Field(
        default=None, pattern=DNS_LABEL, description="Queues in one cohort lend each other unused quota."
    )

    @field_validator("nodes")
    @classmethod
    def _non_negative(cls, nodes: dict[str, int] | None) -> dict[str, int] | None:
        for pool, count in (nodes or {}).items():
            if count < 0:
                raise field_error(pool, f"a quota is a number of nodes, not {count}")
        return nodes


# Add-ons an existing cluster's owners may already run, which meshstack then leaves to them: what
# meshstack's own objects only need present (a device plugin, metrics, a CSI driver). JobSet, Kueue, KEDA
# and the Prometheus Operator stay meshstack's: its queues, scalers and rules are written for its pinned
# charts and values.
OWNER_ADDONS = (
    "nvidia-device-plugin",
    "neuron-device-plugin",
    "efa-device-plugin",
    "metrics-server",
    "dcgm-exporter",
    "fsx-csi-driver",
    "efs-csi-driver",
)
# What a cluster entry sets only for a cluster meshstack creates; an existing one has its own.
NEW_CLUSTER_FIELDS = (
    "kubernetes_version",
    "support_type",
    "public_access_cidrs",
    "deployer_cidrs",
    "admin_principal_arns",
    "log_types",
    "maintenance",
    "autoscaler",
)
# What a pool entry sets only for nodes meshstack launches; an existing cluster's nodes are as they are.
NEW_POOL_FIELDS = ("desired_nodes", "placement_group", "root_volume_gib", "labels", "fallback")
KUBECONFIG_CONTEXT = r"^\S{1,253}$"


class ExistingCluster(SpecModel):
    """A cluster its owners run: meshstack looks it up by name and installs only its add-ons, queues,
    monitoring, workload identities and workloads onto it."""

    name: str = Field(
        description="The cluster's name in the cloud: EKS (in the stack's region) or GKE (in `location`), "
        "looked up at every `pulumi up` and preview for its endpoint, certificate and identity provider."
    )
    location: str | None = Field(
        default=None,
        description="Google Cloud: the cluster's region or zone (the stack's region when omitted). AWS: not "
        "set; the cluster is in the stack's region.",
    )
    context: str | None = Field(
        default=None,
        pattern=KUBECONFIG_CONTEXT,
        description="A context of the deployer's kubeconfig ($KUBECONFIG or ~/.kube/config) to reach the API "
        "through (a bastion, a proxy, another endpoint) instead of the looked-up endpoint with `aws eks "
        "get-token` or gke-gcloud-auth-plugin credentials. The look-up still gives the identity provider.",
    )
    installed: list[str] = Field(
        default_factory=list,
        description=f"Add-ons the cluster's owners already run, which meshstack then does not install: "
        f"{', '.join(OWNER_ADDONS)}.",
    )

    @field_validator("installed")
    @classmethod
    def _owner_addons(cls, installed: list[str]) -> list[str]:
        for i, addon in enumerate(installed):
            if addon not in OWNER_ADDONS:
                raise field_error(
                    f"[{i}]",
                    f"'{addon}' is not an add-on meshstack leaves to a cluster's owners: one of "
                    f"{', '.join(OWNER_ADDONS)} (JobSet, Kueue, KEDA and Prometheus are meshstack's own)",
                )
        check_unique(((f"[{i}]", a) for i, a in enumerate(installed)), "add-on")
        return installed


class ClusterSpec(SpecModel):
    """A Kubernetes cluster meshstack creates (EKS or GKE), or an existing one it deploys onto."""

    name: str = Field(
        pattern=DNS_LABEL, description="A DNS label, unique in the stack: workloads name it, resources carry it."
    )
    existing: ExistingCluster | None = Field(
        default=None,
        description="A cluster that already exists, by name: meshstack creates no cluster, node group, "
        "cluster IAM or network for it. Its pools describe the nodes it already has (see README).",
    )
    kubernetes_version: str | None = Field(
        default=None,
        pattern=r"^1\.\d{2}$",
        description="The minor version, e.g. '1.35': one meshstack pins add-ons for, still supported on the cloud. "
        "Required for a new cluster; an existing one's is looked up.",
    )
    support_type: SupportType = Field(
        default="STANDARD",
        description="EKS: what happens when the version's standard support ends. STANDARD: EKS upgrades the "
        "control plane to the next version on its own, so validation refuses a version past it. EXTENDED: the "
        "version stays until its extended support ends, at the extended-support price (priced by the estimate). "
        "GKE: STANDARD only (its clusters follow the REGULAR release channel).",
    )
    node_pools: list[NodePool] = Field(min_length=1, description="The cluster's node pools, at least one.")
    public_access_cidrs: list[str] = Field(
        default_factory=list,
        description="CIDRs allowed to reach the API endpoint from the internet; empty keeps the endpoint private.",
    )
    deployer_cidrs: list[str] = Field(
        default_factory=list,
        description="Private networks `pulumi up` runs from (a VPN, a CI runner's subnet): they reach the private "
        "API endpoint on 443. Needed when the endpoint is private and the stack deploys workloads into it.",
    )
    admin_principal_arns: list[str] = Field(
        default_factory=list, description="IAM roles or users given cluster-admin through EKS access entries."
    )
    log_types: list[LogType] = Field(
        default_factory=lambda: list(LOG_TYPES),
        description="EKS: the control-plane logs sent to CloudWatch; all of them when omitted.",
    )
    queues: list[QueueSpec] = Field(
        default_factory=list,
        description=f"Kueue queues for the training jobs; none declared: one '{DEFAULT_QUEUE}' queue over every pool.",
    )
    priorities: dict[str, int] = Field(
        default_factory=dict,
        description="Workload priority classes by name: a higher value is admitted first and may preempt a lower.",
    )
    maintenance: MaintenanceSpec | None = Field(
        default=None,
        description="GKE: when upgrades may run, and exclusions that keep them off running jobs; a weekend "
        "window (Saturday and Sunday, 02:00-08:00 UTC) when omitted. EKS takes no window.",
    )
    autoscaler: Autoscaler = Field(
        default="cluster-autoscaler",
        description="EKS: what adds and removes nodes. cluster-autoscaler resizes one managed node group per pool "
        "(and market). karpenter launches the nodes of every pool with min_nodes 0 itself, from a NodePool and "
        "EC2NodeClass per pool; pools with min_nodes of 1 or more stay managed node groups under the "
        "cluster-autoscaler, and host Karpenter's controller, which must not run on nodes it manages.",
    )

    @field_validator("kubernetes_version")
    @classmethod
    def _supported_version(cls, version: str | None) -> str | None:
        if version is not None and version not in SUPPORTED_VERSIONS:
            raise field_error("", f"Kubernetes {version} is not supported: use one of {', '.join(SUPPORTED_VERSIONS)}")
        return version

    @field_validator("public_access_cidrs", "deployer_cidrs")
    @classmethod
    def _check_cidrs(cls, cidrs: list[str]) -> list[str]:
        for cidr in cidrs:
            check_cidr(cidr)
        return cidrs

    @field_validator("admin_principal_arns")
    @classmethod
    def _check_arns(cls, arns: list[str]) -> list[str]:
        for i, arn in enumerate(arns):
            if not re.match(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/.+$", arn):
                raise field_error(
                    f"[{i}]", f"'{arn}' is not an IAM role or user ARN (arn:aws:iam::<account>:role/<name>)"
                )
        return arns

    @model_validator(mode="after")
    def _new_or_existing(self) -> ClusterSpec:
        """A new cluster says its version; an existing one is used as it is, so nothing that would
        configure it (or launch its nodes) is set beside it."""
        if self.existing is None:
            if self.kubernetes_version is None:
                raise field_error("kubernetes_version", "a new cluster needs its version, such as '1.35'")
            return self
        for name in NEW_CLUSTER_FIELDS:
            if name in self.model_fields_set:
                raise field_error(
                    name,
                    f"configures a cluster meshstack creates; existing cluster '{self.existing.name}' keeps its own",
                )
        for i, pool in enumerate(self.node_pools):
            for name in NEW_POOL_FIELDS:
                if name in pool.model_fields_set:
                    raise field_error(
                        f"node_pools[{i}].{name}",
                        f"launches nodes; on existing cluster '{self.existing.name}' a pool describes nodes it has",
                    )
        return self

    @model_validator(mode="after")
    def _unique_pools(self) -> ClusterSpec:
        check_unique(((f"node_pools[{i}].name", p.name) for i, p in enumerate(self.node_pools)), "node pool")
        return self

    @model_validator(mode="after")
    def _check_gke_names(self, info: ValidationInfo) -> ClusterSpec:
        """The node pools meshstack creates on GKE are named `<cluster>-<pool>[-<market>][-<n>]` plus Pulumi's
        suffix, which GKE takes up to 40 characters: a longer one would fail at `pulumi up`."""
        if catalog_from(info).cloud != "gcp" or self.existing is not None:
            return self
        for i, pool in enumerate(self.node_pools):
            keys = node_pool_keys(pool.name, pool.slices, pool.markets, pool.instance_types or [])
            long = next((k for k in keys if too_long(self.name, k)), None)
            if long is not None:
                raise field_error(
                    f"node_pools[{i}].name",
                    f"GKE would refuse node pool '{self.name}-{long}-' plus Pulumi's 7 random characters "
                    "(at most 40 in all): shorten the cluster's or the pool's name",
                )
        return self

    @model_validator(mode="after")
    def _check_karpenter(self, info: ValidationInfo) -> ClusterSpec:
        if self.autoscaler != "karpenter":
            return self
        cloud = catalog_from(info).cloud
        if cloud != "aws":
            raise field_error("autoscaler", f"Karpenter runs on EKS; {cloud.upper()} scales its node pools itself")
        if not any(p.min_nodes for p in self.node_pools):
            raise field_error(
                "node_pools",
                "Karpenter's controller runs on nodes it does not manage: give one pool (a CPU system pool) "
                "min_nodes of 1 or more, which stays a managed node group",
            )
        for i, pool in enumerate(self.node_pools):
            if not self.karpenter_owns(pool):
                continue
            if pool.desired_nodes:
                raise field_error(
                    f"node_pools[{i}].desired_nodes",
                    "a Karpenter pool (min_nodes 0) launches nodes for pending pods only: drop desired_nodes, or "
                    "set min_nodes to keep a managed node group",
                )
            ranks = [KARPENTER_ORDER[m] for m in pool.markets]
            if ranks != sorted(ranks):
                raise field_error(
                    f"node_pools[{i}].fallback",
                    f"Karpenter takes reserved capacity, then spot, then on-demand, whatever the order listed: "
                    f"'{', '.join(pool.markets)}' cannot be kept; list the markets in that order",
                )
        return self

    def karpenter_owns(self, pool: NodePool) -> bool:
        """Karpenter launches the nodes of a pool that keeps none (min_nodes 0) on a Karpenter cluster."""
        return self.autoscaler == "karpenter" and pool.min_nodes == 0

    @field_validator("priorities")
    @classmethod
    def _check_priorities(cls, priorities: dict[str, int]) -> dict[str, int]:
        for name, value in priorities.items():
            if not re.match(DNS_LABEL, name):
                raise field_error(name, f"'{name}' is not a valid priority class name (a DNS label)")
            if abs(value) > 1_000_000_000:
                raise field_error(name, "a priority is at most 1000000000 in size")
        return priorities

    @model_validator(mode="after")
    def _check_queues(self) -> ClusterSpec:
        check_unique(((f"queues[{i}].name", q.name) for i, q in enumerate(self.queues)), "queue")
        pools = {p.name: p for p in self.node_pools}
        for i, queue in enumerate(self.queues):
            for pool_name, count in (queue.nodes or {}).items():
                pool = pools.get(pool_name)
                if pool is None:
                    raise field_error(
                        f"queues[{i}].nodes.{pool_name}", f"no pool '{pool_name}' in this cluster: {', '.join(pools)}"
                    )
                if count > pool.capacity_nodes:
                    raise field_error(
                        f"queues[{i}].nodes.{pool_name}",
                        f"a quota of {count} nodes exceeds what pool '{pool_name}' can hold ({pool.capacity_nodes})",
                    )
        # Kueue admits against quota, not nodes: quotas that add up to more than a pool holds admit
        # jobs whose pods then wait for nodes the pool can never add.
        for pool in self.node_pools:
            promised = [(q.name, self.quota_nodes(q, pool)) for q in self.queue_specs]
            total = sum(n for _, n in promised)
            if len(promised) > 1 and total > pool.capacity_nodes:
                shares = ", ".join(f"{name} {n}" for name, n in promised)
                raise field_error(
                    "queues",
                    f"the queues' quotas of pool '{pool.name}' add up to {total} nodes ({shares}); "
                    f"the pool holds {pool.capacity_nodes}: lend through a cohort instead",
                )
        return self

    @property
    def queue_specs(self) -> list[QueueSpec]:
        """The declared queues, or the one default queue over every pool."""
        return self.queues or [QueueSpec(name=DEFAULT_QUEUE)]

    def quota_nodes(self, queue: QueueSpec, pool: NodePool) -> int:
        if queue.nodes is None:
            return pool.capacity_nodes
        return queue.nodes.get(pool.name, 0)
