"""A cluster's node pools, sized by what accelerator they carry, and the taints on their nodes."""

from __future__ import annotations

import re

from pydantic import Field, ValidationInfo, field_validator, model_validator

from meshstack.core import clouds
from meshstack.core.catalog import Catalog, InstanceType
from meshstack.core.spec.base import (
    DNS_LABEL,
    SpecModel,
    catalog_from,
    check_label,
    check_labels,
    field_error,
)
from meshstack.core.vocabulary import PINNED_MARKETS, FallbackMarket, Market, TaintEffect


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
        clouds.get(catalog.cloud).check_pool(self, catalog)
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
