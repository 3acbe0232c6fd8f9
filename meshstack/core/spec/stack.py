"""The whole stack: one environment's tags, network, clusters, storage and budget."""

from __future__ import annotations

import datetime
import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from meshstack.core import (
    capacity,  # the module, not its names: capacity reads the spec's own classes
    clouds,
)
from meshstack.core.catalog import Catalog, known_clouds
from meshstack.core.kubernetes import support_date, support_problem
from meshstack.core.network import NetworkSpec
from meshstack.core.observability import AlertSpec
from meshstack.core.spec import workload_fit
from meshstack.core.spec.base import SpecModel, catalog_from, field_error
from meshstack.core.spec.cluster import ClusterSpec
from meshstack.core.spec.data import StorageRef
from meshstack.core.spec.pool import NodePool
from meshstack.core.spec.workload import InferenceWorkload, TrainingWorkload, Workload
from meshstack.core.spec.zones import check_zones
from meshstack.core.storage import StorageSpec
from meshstack.core.validation import check_unique
from meshstack.core.vocabulary import STACK_NAME

if TYPE_CHECKING:
    from meshstack.core.capacity import Demand

REQUIRED_TAGS = ("team", "project", "cost-center")
TAG_KEY = re.compile(r"^[\w .:/=+@-]{1,128}$")


class Budget(SpecModel):
    """Limits the policy pack enforces against the stack's estimated cost and energy."""

    max_hourly_usd: float | None = Field(
        default=None, gt=0, description="The cost per hour while the workloads run (Cost, in the README)."
    )
    max_monthly_usd: float | None = Field(
        default=None,
        gt=0,
        description="The cost per month while the workloads run, each training run counted once a month.",
    )
    max_accelerators: int | None = Field(
        default=None,
        ge=0,
        description="Accelerators the pools can grow to (in the pack), and the workloads need at once (at validation).",
    )
    max_monthly_kwh: float | None = Field(
        default=None, gt=0, description="Energy while the workloads run, kWh per month at the wall."
    )
    max_run_usd: float | None = Field(
        default=None,
        gt=0,
        description="What one run of each training workload may cost end to end (its nodes for its estimated "
        "hours), checked at validation.",
    )


class StackSpec(SpecModel):
    name: str = Field(pattern=STACK_NAME, description="The Pulumi stack name.")
    cloud: str = Field(default="aws", description="The cloud whose provider keys the stack sets (aws:*, gcp:*).")
    region: str = Field(description="From aws:region or gcp:region.")
    settings: dict[str, str] = Field(
        default_factory=dict,
        description="The cloud's own settings, from its provider keys beside the region (gcp:project, gcp:zone), "
        "as its settings model declares them (GcpSettings, below).",
    )
    environment: Literal["dev", "staging", "prod"] = Field(
        description="Decides defaults and which cost rules apply (dev stacks must use spot or scale to zero)."
    )
    tags: dict[str, str] = Field(
        description="Cost-allocation tags for every taggable resource, which also gets meshstack:stack and "
        "managed-by; team, project and cost-center are required. On Google Cloud they are labels (lower-case; "
        "meshstack-stack)."
    )
    network: NetworkSpec = Field(
        default_factory=NetworkSpec, description="The VPC the clusters and file systems sit in, new or existing."
    )
    clusters: list[ClusterSpec] = Field(min_length=1, description="The Kubernetes clusters, each with its pools.")
    storage: StorageSpec = Field(
        default_factory=StorageSpec, description="Buckets and file systems the workloads read and write."
    )
    budget: Budget = Field(
        default_factory=Budget, description="Cost, accelerator and energy limits; the policy pack enforces them."
    )
    alerts: AlertSpec = Field(default_factory=AlertSpec, description="Thresholds of the alerts each cluster gets.")
    workloads: list[Workload] = Field(
        default_factory=list, description="Training jobs and inference services, told apart by `kind`."
    )

    @field_validator("cloud")
    @classmethod
    def _known_cloud(cls, cloud: str) -> str:
        if cloud not in known_clouds():
            raise field_error("", f"no cloud '{cloud}' is registered: known are {', '.join(known_clouds())}")
        return cloud

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        for key in REQUIRED_TAGS:
            if not tags.get(key, "").strip():
                raise field_error(key, f"the '{key}' tag is required (required tags: {', '.join(REQUIRED_TAGS)})")
        for key, value in tags.items():
            if not TAG_KEY.match(key):
                raise field_error(key, f"'{key}' is not a valid tag key (1-128 letters, digits, spaces and _.:/=+-@)")
            if len(value) > 256:
                raise field_error(key, "tag values are at most 256 characters")
        return tags

    @model_validator(mode="after")
    def _check_location(self, info: ValidationInfo) -> StackSpec:
        """The cloud's catalog says what a region, project and zone look like and what storage it offers."""
        facts = catalog_from(info, self.cloud).facts
        keys = facts.config_keys
        if self.region not in facts.regions:
            raise field_error(
                "region",
                f"'{self.region}' is not one of the catalog's {self.cloud.upper()} regions "
                f"({', '.join(facts.regions)}); a catalog override file adds one",
            )
        project, zone = self.settings.get("project"), self.settings.get("zone")
        if facts.project_pattern is not None and (project is None or not re.match(facts.project_pattern, project)):
            raise field_error(
                "settings.project", f"{keys.get('project', 'project')} must name the project (6-30 characters)"
            )
        if facts.zone_required and (zone is None or not zone.startswith(f"{self.region}-")):
            raise field_error(
                "settings.zone", f"{keys.get('zone', 'zone')} must be a zone of {self.region}, such as {self.region}-a"
            )
        try:
            self.cloud_settings()
        except ValidationError as exc:
            first = exc.errors()[0]
            raise field_error(".".join(["settings", *map(str, first["loc"])]), first["msg"]) from exc
        for i, cluster in enumerate(self.clusters):
            if cluster.maintenance is not None and not facts.maintenance_windows:
                raise field_error(
                    f"clusters[{i}].maintenance",
                    f"{self.cloud.upper()} does not upgrade a cluster's nodes on its own: node groups change only "
                    "when the stack does, so there is no window to set",
                )
        for kind in type(self.storage).model_fields:
            if getattr(self.storage, kind) and kind not in facts.storage:
                raise field_error(f"storage.{kind}", f"{kind} is not offered on {self.cloud.upper()}")
        return self

    @model_validator(mode="after")
    def _check_existing_clusters(self) -> StackSpec:
        """Existing clusters bring their own network: the stack's storage joins the first one's, so the
        clusters are all existing or all new, and file systems (mounted over that network) serve one."""
        existing = [(i, c.existing) for i, c in enumerate(self.clusters) if c.existing is not None]
        if not existing:
            return self
        if len(existing) != len(self.clusters):
            i = next(i for i, c in enumerate(self.clusters) if c.existing is None)
            raise field_error(
                f"clusters[{i}].existing",
                "a stack's clusters are all existing or all new: its storage joins the existing clusters' network",
            )
        cloud = clouds.get(self.cloud)
        for i, cluster in existing:
            if not cloud.cluster_name.match(cluster.name):
                raise field_error(f"clusters[{i}].existing.name", f"'{cluster.name}' is not {cloud.cluster_name_help}")
        for name in sorted(self.network.model_fields_set - {"zones", "availability_zones"}):
            raise field_error(
                f"network.{name}",
                "with existing clusters, their own network is used (looked up from the cluster); only zones "
                "may list its zone ids",
            )
        filesystems = [
            kind for kind in type(self.storage).model_fields if kind != "buckets" and getattr(self.storage, kind)
        ]
        if filesystems and len(existing) > 1:
            raise field_error(
                f"storage.{filesystems[0]}",
                "a file system joins one network: with file systems, a stack has one existing cluster",
            )
        return self

    @model_validator(mode="after")
    def _check_cloud(self) -> StackSpec:
        """The rules only the stack's cloud has, declared by the cloud."""
        clouds.get(self.cloud).check_stack(self)
        return self

    def cloud_settings(self) -> SpecModel:
        """The stack's settings as its cloud's own settings model reads them."""
        return clouds.get(self.cloud).settings.model_validate(self.settings)

    def outside_stack(self) -> list[str]:
        """What the stack uses but does not declare, so neither the preview nor the policy pack checked it."""
        lines = []
        for cluster in self.clusters:
            if cluster.existing is None:
                continue
            lines.append(
                f"cluster '{cluster.name}' is existing {self.cloud.upper()} cluster '{cluster.existing.name}': its "
                "own security settings (API endpoint access, secrets encryption, control plane logs, node "
                "images, node IAM and network rules) are outside this stack and were not checked by the policy "
                "pack; its nodes are its owners' and are not in the cost estimate"
            )
        return lines

    @model_validator(mode="after")
    def _check_kubernetes_support(self, info: ValidationInfo) -> StackSpec:
        """A version still supported on the cloud on the day of validation (or of the context's
        `today`, or MESHSTACK_TODAY), under the cluster's support type."""
        context: Any = info.context
        today = context.get("today") if isinstance(context, dict) else None
        on = today if isinstance(today, datetime.date) else support_date()
        for i, cluster in enumerate(self.clusters):
            if cluster.kubernetes_version is None:
                continue  # an existing cluster: its version is checked against meshstack's pins at `up`
            problem = support_problem(self.cloud, cluster.kubernetes_version, cluster.support_type, on)
            if problem is not None:
                field, why = problem
                raise field_error(f"clusters[{i}].{field}", f"{why} (as of {on})")
        return self

    @model_validator(mode="after")
    def _unique_clusters(self) -> StackSpec:
        check_unique(((f"clusters[{i}].name", c.name) for i, c in enumerate(self.clusters)), "cluster")
        return self

    @model_validator(mode="after")
    def _check_deploy_path(self) -> StackSpec:
        """The program sends Kubernetes objects to each cluster with workloads: `pulumi up` must reach
        its API endpoint, which is private unless public_access_cidrs opens it."""
        for i, cluster in enumerate(self.clusters):
            deploys = any(w.cluster == cluster.name for w in self.workloads)
            if deploys and cluster.existing is None and not cluster.public_access_cidrs and not cluster.deployer_cidrs:
                raise field_error(
                    f"clusters[{i}].deployer_cidrs",
                    f"cluster '{cluster.name}' has a private API endpoint and the stack deploys workloads into it: "
                    "name the private networks `pulumi up` runs from (a VPN, a CI runner's subnet) here, "
                    "or open the endpoint to them with public_access_cidrs",
                )
        return self

    @model_validator(mode="after")
    def _check_workloads(self, info: ValidationInfo) -> StackSpec:
        check_unique(((f"workloads[{i}].name", w.name) for i, w in enumerate(self.workloads)), "workload")
        catalog = catalog_from(info, self.cloud)
        demands = []
        for i, workload in enumerate(self.workloads):
            at = f"workloads[{i}]"
            workload_fit.check_placement(self, at, workload)
            workload_fit.check_program(self, at, workload, catalog)
            workload_fit.check_storage(self, at, workload)
            demands.append(capacity.demand(workload, self.pool_of(workload), catalog))
            workload_fit.check_capacity(self, at, workload, demands[-1])
            workload_fit.check_memory(self, at, workload, demands[-1], catalog)
        workload_fit.check_accelerator_budget(self, demands)
        return self

    @model_validator(mode="after")
    def _check_run_budget(self, info: ValidationInfo) -> StackSpec:
        """A training run is paid per run: held to max_run_usd, with what it would take shown."""
        cap = self.budget.max_run_usd
        if cap is None:
            return self
        from meshstack.core.runs import training_runs

        catalog = catalog_from(info, self.cloud)
        over = [run for run in training_runs(self, catalog) if run.cost_usd > cap]
        if over:
            parts = "; ".join(
                f"'{r.workload}' costs about ${r.cost_usd:,.0f} ({r.hours:,.1f} hours on {r.nodes} x "
                f"{r.instance_type}, "
                f"{r.market})"
                for r in over
            )
            raise field_error("budget.max_run_usd", f"{parts}, over the budget's ${cap:,.0f} per run")
        return self

    @model_validator(mode="after")
    def _check_zones(self, info: ValidationInfo) -> StackSpec:
        check_zones(self, catalog_from(info, self.cloud))
        return self

    def cluster_of(self, workload: TrainingWorkload | InferenceWorkload) -> ClusterSpec:
        return next(c for c in self.clusters if c.name == workload.cluster)

    def pool_of(self, workload: TrainingWorkload | InferenceWorkload) -> NodePool:
        return next(p for p in self.cluster_of(workload).node_pools if p.name == workload.node_pool)

    def demands(self, catalog: Catalog) -> list[Demand]:
        """What every workload needs of its pool at full size."""
        return [capacity.demand(w, self.pool_of(w), catalog) for w in self.workloads]

    def devices_per_process(self, workload: TrainingWorkload) -> int:
        """The workload's own figure, else the whole node's accelerators (one process per host), else 1 on CPU."""
        if workload.devices_per_process is not None:
            return workload.devices_per_process
        return self.pool_of(workload).accelerators_per_node or 1

    def storage_refs(self, workload: TrainingWorkload | InferenceWorkload) -> list[StorageRef]:
        """The bucket prefixes a workload reads or writes: what its identity may reach."""
        if isinstance(workload, TrainingWorkload):
            pretrained = workload.init_from if isinstance(workload.init_from, StorageRef) else None
            return [r for r in (workload.data, workload.checkpoints, pretrained) if r is not None]
        if workload.engine == "meshstack":
            return [self.checkpoints_of(workload)]
        return [workload.weights] if workload.weights is not None else []

    def checkpoints_of(self, workload: InferenceWorkload) -> StorageRef:
        """The checkpoints meshstack's server loads: its own, its training workload's, or a Hugging Face
        folder (weights)."""
        if workload.checkpoints is not None:
            return workload.checkpoints
        if workload.weights is not None:
            return workload.weights
        trained = next(
            w for w in self.workloads if isinstance(w, TrainingWorkload) and w.name == workload.from_training
        )
        assert trained.checkpoints is not None, "validated: meshstack's trainer has checkpoints"
        return trained.checkpoints

    def resource_tags(self, tag_style: str = "tags") -> dict[str, str]:
        """The tags (or labels) every taggable resource carries: the user's, plus where it came from."""
        if tag_style == "labels":
            return {**self.tags, "meshstack-stack": self.name.lower(), "managed-by": "meshstack"}
        return {**self.tags, "meshstack:stack": self.name, "managed-by": "meshstack"}
