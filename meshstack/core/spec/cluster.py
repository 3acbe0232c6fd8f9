"""Kubernetes clusters: one meshstack creates, with its version, access and pools, or an existing one."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from meshstack.core import clouds
from meshstack.core.kubernetes import SUPPORTED_VERSIONS, SupportType
from meshstack.core.spec.base import (
    DNS_LABEL,
    SpecModel,
    catalog_from,
    check_cidr,
    field_error,
)
from meshstack.core.spec.existing import ExistingCluster
from meshstack.core.spec.maintenance import MaintenanceSpec
from meshstack.core.spec.pool import NodePool
from meshstack.core.spec.queues import DEFAULT_QUEUE, QueueSpec
from meshstack.core.validation import check_unique
from meshstack.core.vocabulary import LOG_TYPES, LogType

# The autoscalers meshstack installs; a cloud says which of them it runs (Cloud.autoscalers).
Autoscaler = Literal["cluster-autoscaler", "karpenter"]
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
    def _check_cloud(self, info: ValidationInfo) -> ClusterSpec:
        """The autoscaler is one the cloud runs, and the cloud's own rules hold."""
        cloud = clouds.get(catalog_from(info).cloud)
        if self.autoscaler not in cloud.autoscalers:
            raise field_error(
                "autoscaler",
                f"{cloud.title} scales its node pools with {', '.join(cloud.autoscalers)}, not {self.autoscaler}",
            )
        cloud.check_cluster(self)
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
