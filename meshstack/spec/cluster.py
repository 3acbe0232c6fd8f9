"""Kubernetes clusters and their node pools, sized by what accelerator they carry."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from components.catalog import InstanceType
from meshstack.spec.base import DNS_LABEL, SpecModel, catalog_from, check_cidr, check_label, field_error

Market = Literal["on-demand", "spot", "capacity-block", "reservation"]

ALL_LOG_TYPES = ["api", "audit", "authenticator", "controllerManager", "scheduler"]


class Taint(SpecModel):
    key: str
    value: str = ""
    effect: Literal["NoSchedule", "NoExecute", "PreferNoSchedule"] = "NoSchedule"

    @model_validator(mode="after")
    def _check(self) -> Taint:
        check_label(self.key, self.value)
        return self


class NodePool(SpecModel):
    name: str = Field(pattern=DNS_LABEL)
    accelerator: str = Field(
        description="What the nodes carry: h100, a100, l40s, l4, a10g, trainium1, trainium2 or cpu."
    )
    accelerators_per_node: int | None = Field(
        default=None, ge=0, description="Picks the instance type with that many; taken from instance_type when omitted."
    )
    instance_type: str | None = Field(
        default=None, description="A catalog instance type; the cheapest with accelerators_per_node when omitted."
    )
    min_nodes: int = Field(default=0, ge=0)
    max_nodes: int = Field(ge=1, description="Required: an unbounded pool is an unbounded bill.")
    desired_nodes: int | None = Field(default=None, ge=0, description="Defaults to min_nodes.")
    market: Market = "on-demand"
    reservation_id: str | None = Field(
        default=None, pattern=r"^cr-[0-9a-f]{17}$", description="The capacity block or reservation to launch into."
    )
    efa: bool = Field(default=False, description="Attach one EFA interface per network card the type has.")
    placement_group: bool = Field(default=False, description="Launch into a cluster placement group (one AZ).")
    root_volume_gib: int = Field(default=200, ge=20, le=16384)
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for key, value in labels.items():
            check_label(key, value)
        return labels

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
        itype = catalog.instance_types.get(self.instance_type)
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
        self._check_capacity(itype)
        return self

    def _check_capacity(self, itype: InstanceType) -> None:
        if self.efa and not itype.supports_efa:
            raise field_error(
                "efa", f"{self.instance_type} has no EFA support: turn efa off or pick an EFA-capable instance type"
            )
        if self.min_nodes > self.max_nodes:
            raise field_error("min_nodes", f"min_nodes {self.min_nodes} is greater than max_nodes {self.max_nodes}")
        if self.desired_nodes is not None and self.desired_nodes > self.max_nodes:
            raise field_error("desired_nodes", f"desired_nodes {self.desired_nodes} exceeds max_nodes {self.max_nodes}")
        if self.desired_nodes is not None and self.desired_nodes < self.min_nodes:
            raise field_error(
                "desired_nodes", f"desired_nodes {self.desired_nodes} is below min_nodes {self.min_nodes}"
            )
        needs_id = self.market in ("capacity-block", "reservation")
        if needs_id and self.reservation_id is None:
            raise field_error(
                "reservation_id", f"market '{self.market}' needs the reservation id (cr-...) it launches into"
            )
        if not needs_id and self.reservation_id is not None:
            raise field_error(
                "reservation_id", f"only capacity-block and reservation markets take an id; market is '{self.market}'"
            )

    @property
    def desired(self) -> int:
        return self.min_nodes if self.desired_nodes is None else self.desired_nodes


class ClusterSpec(SpecModel):
    name: str = Field(pattern=DNS_LABEL)
    kubernetes_version: str = Field(pattern=r"^1\.\d{2}$", description="EKS minor version, e.g. '1.33'.")
    node_pools: list[NodePool] = Field(min_length=1)
    public_access_cidrs: list[str] = Field(
        default_factory=list,
        description="CIDRs allowed to reach the API endpoint from the internet; empty keeps the endpoint private.",
    )
    admin_principal_arns: list[str] = Field(
        default_factory=list, description="IAM roles or users given cluster-admin through EKS access entries."
    )
    log_types: list[Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]] = Field(
        default_factory=lambda: list(ALL_LOG_TYPES)
    )

    @field_validator("public_access_cidrs")
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
    def _unique_pools(self) -> ClusterSpec:
        seen: set[str] = set()
        for i, pool in enumerate(self.node_pools):
            if pool.name in seen:
                raise field_error(f"node_pools[{i}].name", f"node pool name '{pool.name}' is used twice")
            seen.add(pool.name)
        return self
