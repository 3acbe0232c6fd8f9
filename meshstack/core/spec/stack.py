"""The whole stack: one environment's tags, network, clusters, storage and budget."""

from __future__ import annotations

import datetime
import math
import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from meshstack.core import (
    capacity,  # the module, not its names: capacity reads the spec's own classes
    sizing,
)
from meshstack.core.catalog import Catalog, known_clouds
from meshstack.core.contract import served_seq_len
from meshstack.core.engines import vllm
from meshstack.core.kubernetes import support_date, support_problem
from meshstack.core.network import NetworkSpec
from meshstack.core.observability import AlertSpec
from meshstack.core.programs import maxtext
from meshstack.core.spec.base import SpecModel, catalog_from, field_error
from meshstack.core.spec.cluster import ClusterSpec, NodePool
from meshstack.core.spec.workload import InferenceWorkload, StorageRef, TrainingWorkload, Workload
from meshstack.core.spec.zones import check_zones
from meshstack.core.storage import StorageSpec
from meshstack.core.validation import check_unique
from meshstack.core.vendors import VENDORS
from meshstack.core.vocabulary import STACK_NAME

if TYPE_CHECKING:
    from meshstack.core.capacity import Demand

REQUIRED_TAGS = ("team", "project", "cost-center")
SERVER_WEIGHTS_SHARE = 0.8  # of the memory a server takes, at most this for weights: the rest is KV cache
GCP_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
GCP_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
TAG_KEY = re.compile(r"^[\w .:/=+@-]{1,128}$")
# Cluster names as each cloud takes them: EKS CreateCluster ("alphanumeric characters, hyphens and
# underscores, starting with an alphanumeric character, at most 100") and GKE ("a lowercase letter, then at
# most 39 lowercase letters, digits or hyphens, not ending with a hyphen"), read 2026-12-08.
CLUSTER_NAMES = {
    "aws": (re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,99}$"), "an EKS cluster name (letters, digits, - and _)"),
    "gcp": (re.compile(r"^[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?$"), "a GKE cluster name (lower-case letters, digits, -)"),
}


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
    project: str | None = Field(default=None, description="From gcp:project.")
    zone: str | None = Field(default=None, description="From gcp:zone: where TPU slices and GPU pools run.")
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
            raise field_error("", f"no catalog for cloud '{cloud}': known are {', '.join(known_clouds())}")
        return cloud

    @model_validator(mode="after")
    def _check_labels(self, info: ValidationInfo) -> StackSpec:
        """Where the tags become labels (Google Cloud), they allow less than AWS tags do."""
        if catalog_from(info, self.cloud).facts.tag_style == "labels":
            for key, value in self.tags.items():
                if not GCP_LABEL_KEY.match(key) or not GCP_LABEL_VALUE.match(value):
                    raise field_error(f"tags.{key}", "GCP labels hold only lowercase letters, digits, - and _")
        return self

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        for key in REQUIRED_TAGS:
            if not tags.get(key, "").strip():
                raise field_error(key, f"the '{key}' tag is required (required tags: {', '.join(REQUIRED_TAGS)})")
        for key, value in tags.items():
            if key.lower().startswith("aws:") or not TAG_KEY.match(key):
                raise field_error(key, f"'{key}' is not a valid AWS tag key (1-128 characters, not starting with aws:)")
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
        if facts.project_pattern is not None and (
            self.project is None or not re.match(facts.project_pattern, self.project)
        ):
            raise field_error("project", f"{keys.get('project', 'project')} must name the project (6-30 characters)")
        if facts.zone_required and (self.zone is None or not self.zone.startswith(f"{self.region}-")):
            raise field_error(
                "zone", f"{keys.get('zone', 'zone')} must be a zone of {self.region}, such as {self.region}-a"
            )
        for i, cluster in enumerate(self.clusters):
            if cluster.maintenance is not None and not facts.maintenance_windows:
                raise field_error(
                    f"clusters[{i}].maintenance",
                    f"{self.cloud.upper()} does not upgrade a cluster's nodes on its own: node groups change only "
                    "when the stack does, so there is no window to set",
                )
        others = {"aws": ("network", "subnetwork"), "gcp": ("vpc_id", "subnet_ids")}.get(self.cloud, ())
        for name in others:
            if getattr(self.network, name) is not None:
                raise field_error(f"network.{name}", f"names a network of another cloud, not {self.cloud.upper()}'s")
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
        pattern, what = CLUSTER_NAMES[self.cloud]
        for i, cluster in existing:
            at = f"clusters[{i}].existing"
            if not pattern.match(cluster.name):
                raise field_error(f"{at}.name", f"'{cluster.name}' is not {what}")
            if cluster.location is not None:
                if self.cloud != "gcp":
                    raise field_error(f"{at}.location", f"an EKS cluster is in the stack's region ({self.region})")
                if cluster.location != self.region and not cluster.location.startswith(f"{self.region}-"):
                    raise field_error(
                        f"{at}.location", f"'{cluster.location}' is not {self.region} or one of its zones"
                    )
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
        if self.cloud == "aws" and filesystems and self.network.zones is None:
            raise field_error(
                "network.zones",
                f"list the zone ids of the existing cluster's subnets that {filesystems[0]}'s mount targets go in "
                "(use1-az4): they are looked up among its subnets by zone",
            )
        return self

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
            self._check_placement(at, workload)
            self._check_program(at, workload, catalog)
            self._check_storage(at, workload)
            demands.append(capacity.demand(workload, self.pool_of(workload), catalog))
            self._check_capacity(at, workload, demands[-1])
            self._check_memory(at, workload, demands[-1], catalog)
        self._check_accelerator_budget(demands)
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

    def _check_capacity(self, at: str, workload: TrainingWorkload | InferenceWorkload, need: Demand) -> None:
        """What would keep a declared job from ever starting: a reservation or a queue smaller than it."""
        pool = need.pool
        if pool.reserved_nodes is not None and need.nodes > pool.reserved_nodes:
            raise field_error(
                at,
                f"needs {need.describe()}; the {pool.market} of pool '{pool.name}' holds "
                f"{need.describe_nodes(pool.reserved_nodes)}",
            )
        if not isinstance(workload, TrainingWorkload):
            return
        cluster = self.cluster_of(workload)
        queue = capacity.queue_of(cluster, workload)
        names = ", ".join(q.name for q in cluster.queue_specs)
        if queue is None:
            problem = "name one" if workload.queue is None else f"no queue '{workload.queue}'"
            raise field_error(f"{at}.queue", f"{problem}: cluster '{cluster.name}' has queues {names}")
        if workload.priority is not None and workload.priority not in cluster.priorities:
            raise field_error(
                f"{at}.priority",
                f"no priority '{workload.priority}' in cluster '{cluster.name}': "
                f"{', '.join(cluster.priorities) or 'none declared'}",
            )
        admits = capacity.admissible_nodes(cluster, queue, pool)
        if need.nodes > admits:
            lending = f" with what its cohort '{queue.cohort}' lends" if queue.cohort else ""
            raise field_error(
                f"{at}.queue",
                f"needs {need.describe()}; queue '{queue.name}' admits {need.describe_nodes(admits)}{lending}",
            )

    def _check_memory(
        self, at: str, workload: TrainingWorkload | InferenceWorkload, need: Demand, catalog: Catalog
    ) -> None:
        """The model must fit the memory of the accelerators its pods get (meshstack.core.sizing)."""
        accelerator = catalog.accelerators[need.pool.accelerator]
        if not need.devices_per_pod or not accelerator.memory_gib:
            return
        if isinstance(workload, InferenceWorkload) and workload.engine != "meshstack":
            self._check_server_memory(at, workload, need, accelerator.memory_gib)
            return
        if isinstance(workload, TrainingWorkload) and workload.custom and not workload.model_given:
            return  # a program meshstack does not know, with no model shape: nothing to size
        cfg = workload.model
        model = sizing.of_model(cfg)
        usable = accelerator.memory_gib * sizing.USABLE_MEMORY
        name = need.pool.accelerator
        if isinstance(workload, TrainingWorkload):
            mesh, train = workload.mesh, workload.train
            shards = mesh.fsdp * mesh.tensor
            sequences = max(train.global_batch // (train.micro_batches * mesh.data * mesh.fsdp), 1)
            precision = "fp32" if train.compute_dtype == "float32" else "bf16"
            state = sizing.training_state_bytes(model, "fp32") / shards / sizing.GIB
            activations = (
                sizing.activation_bytes(model, train.seq_len, sequences, mesh.tensor, precision=precision) / sizing.GIB
            )
            if state + activations > usable:
                raise field_error(
                    f"{at}.mesh",
                    f"needs {state + activations:.1f} GiB per {name}: {state:.1f} GiB of weights, gradients and "
                    f"Adam state over fsdp x tensor = {shards} devices and {activations:.1f} GiB of activations "
                    f"for {sequences} sequences of {train.seq_len} tokens; a {name} holds {accelerator.memory_gib:g} "
                    f"GiB ({usable:.0f} usable): shard over more devices or use smaller micro batches",
                )
            return
        # The server (workloads/jax/serve.py) holds bf16 weights (int8 where quantized) sharded over
        # the replica's devices, and its KV cache's rows (bf16): max_batch_size, or what kv_cache_gib holds.
        serve = workload.serve
        devices = need.devices_per_pod
        precision = "int8" if serve.quantization == "int8" else "bf16"
        weights = sizing.weights_bytes(model, precision) / sizing.GIB / devices
        seq_len = served_seq_len(cfg, serve)
        try:
            rows = sizing.kv_cache_rows(model, seq_len, 2, serve.max_batch_size, serve.kv_cache_gib)
        except ValueError as exc:
            raise field_error(f"{at}.serve.kv_cache_gib", str(exc)) from None
        cache = rows * model.kv_bytes_per_token(2) * seq_len / sizing.GIB / devices
        if weights + cache > usable:
            field = "kv_cache_gib" if serve.kv_cache_gib is not None else "max_batch_size"
            raise field_error(
                f"{at}.serve.{field}",
                f"needs {weights + cache:.1f} GiB per {name}: {weights:.1f} GiB of {precision} weights and "
                f"{cache:.1f} GiB of KV cache for {rows} requests of {seq_len} tokens, over {devices} "
                f"device(s); a {name} holds {accelerator.memory_gib:g} GiB ({usable:.0f} usable)",
            )

    @staticmethod
    def _check_server_memory(at: str, workload: InferenceWorkload, need: Demand, memory_gib: float) -> None:
        """vLLM or a custom server: its weights, split over the replica's devices, must leave room
        for a KV cache in the share of memory the server takes."""
        if workload.weights_gib is not None:
            weights, source = workload.weights_gib, "weights_gib"
        elif workload.model_given:
            weights, source = sizing.weights_bytes(sizing.of_model(workload.model), "bf16") / sizing.GIB, "model"
        else:
            return
        share = workload.vllm.gpu_memory_utilization if workload.engine == "vllm" else sizing.USABLE_MEMORY
        per_device = weights / need.devices_per_pod
        usable = memory_gib * share
        if per_device > usable * SERVER_WEIGHTS_SHARE:
            raise field_error(
                f"{at}.devices_per_replica",
                f"{weights:.1f} GiB of weights ({source}) over {need.devices_per_pod} {need.pool.accelerator} is "
                f"{per_device:.1f} GiB each, more than {SERVER_WEIGHTS_SHARE:.0%} of the {usable:.0f} GiB the "
                "server may use, leaving too little for its KV cache: use more devices per replica or quantize",
            )

    def _check_program(self, at: str, workload: TrainingWorkload | InferenceWorkload, catalog: Catalog) -> None:
        """What MaxText and vLLM need of the pool they run on."""
        pool = self.pool_of(workload)
        vendor = catalog.accelerators[pool.accelerator].vendor
        per_node = pool.accelerators_per_node or 0
        if isinstance(workload, TrainingWorkload):
            if workload.custom or workload.program != "maxtext":
                return
            if VENDORS[vendor].maxtext_hardware is None:
                raise field_error(f"{at}.program", f"MaxText runs on GPUs, TPUs and CPUs, not on {pool.accelerator}")
            if pool.topology is not None:
                within, across = math.prod(int(d) for d in pool.topology.split("x")), pool.slices
            else:
                within, across = max(self.devices_per_process(workload) if per_node else 1, 1), workload.processes
            try:
                maxtext.split_mesh(workload.mesh, within, across)
            except ValueError as exc:
                raise field_error(f"{at}.mesh", str(exc)) from None
            return
        if workload.engine != "vllm":
            return
        image = VENDORS[vendor].vllm_image
        if image is None:
            raise field_error(
                f"{at}.node_pool", f"vLLM's images serve on NVIDIA GPUs and TPUs, not on {pool.accelerator}"
            )
        if image not in vllm.facts().images and workload.image is None:
            raise field_error(
                f"{at}.image",
                f"vLLM {vllm.facts().source['tag']} publishes no image for {pool.accelerator} pools: give image "
                "(one with vLLM's TPU build, the vllm-tpu package)",
            )
        devices = workload.devices_per_replica if workload.devices_per_replica is not None else min(per_node, 1)
        if devices < 1 or per_node % devices:
            raise field_error(
                f"{at}.devices_per_replica",
                f"vLLM's tensor-parallel size {devices} must divide the {per_node} accelerators of a node of "
                f"pool '{pool.name}'",
            )

    def _check_accelerator_budget(self, demands: list[Demand]) -> None:
        """Every workload at full size at once must fit the budget's accelerator cap."""
        cap = self.budget.max_accelerators
        total = sum(d.accelerators for d in demands)
        if cap is None or total <= cap:
            return
        parts = ", ".join(f"{d.workload} {d.describe()}" for d in demands if d.accelerators)
        raise field_error(
            "budget.max_accelerators",
            f"the workloads need {total} accelerators at once ({parts}); the budget allows {cap}",
        )

    def _check_placement(self, at: str, workload: TrainingWorkload | InferenceWorkload) -> None:
        clusters = {c.name: c for c in self.clusters}
        cluster = clusters.get(workload.cluster)
        if cluster is None:
            raise field_error(f"{at}.cluster", f"no cluster '{workload.cluster}': declared are {', '.join(clusters)}")
        pools = {p.name: p for p in cluster.node_pools}
        pool = pools.get(workload.node_pool)
        if pool is None:
            raise field_error(
                f"{at}.node_pool", f"cluster '{cluster.name}' has no pool '{workload.node_pool}': {', '.join(pools)}"
            )
        per_node = pool.accelerators_per_node or 0
        if isinstance(workload, InferenceWorkload):
            if pool.topology is not None and workload.devices_per_replica not in (None, per_node):
                raise field_error(f"{at}.devices_per_replica", f"a TPU host takes all its {per_node} chips")
            if (workload.devices_per_replica or 0) > per_node:
                raise field_error(f"{at}.devices_per_replica", f"pool '{pool.name}' nodes have {per_node} accelerators")
            return
        devices = self.devices_per_process(workload)
        if pool.topology is not None:
            self._check_tpu_job(at, workload, pool)
            return
        if per_node and devices > per_node:
            raise field_error(f"{at}.devices_per_process", f"pool '{pool.name}' nodes have {per_node} accelerators")
        if not workload.custom and workload.mesh.size != workload.processes * devices:
            raise field_error(
                f"{at}.mesh",
                f"data x fsdp x tensor = {workload.mesh.size} must equal processes x devices_per_process = "
                f"{workload.processes} x {devices} = {workload.processes * devices}",
            )
        per_node_processes = per_node // devices if per_node else 1
        if workload.processes > pool.max_nodes * per_node_processes:
            raise field_error(
                f"{at}.processes",
                f"{workload.processes} processes do not fit pool '{pool.name}' "
                f"(max_nodes {pool.max_nodes} x {per_node_processes} per node)",
            )

    @staticmethod
    def _check_tpu_job(at: str, workload: TrainingWorkload, pool: NodePool) -> None:
        """One process per TPU host of every slice, and a mesh over every chip of them."""
        chips = math.prod(int(d) for d in str(pool.topology).split("x"))
        per_host = pool.accelerators_per_node or 1
        hosts = chips // per_host * pool.slices
        if pool.slices > 1 and not workload.use_jobset:
            raise field_error(f"{at}.use_jobset", "a job over several TPU slices needs JobSet (one job per slice)")
        if workload.devices_per_process not in (None, per_host):
            raise field_error(f"{at}.devices_per_process", f"a TPU host of pool '{pool.name}' has {per_host} chips")
        if workload.processes != hosts:
            raise field_error(
                f"{at}.processes",
                f"pool '{pool.name}' is {pool.slices} x {pool.topology} slice(s) with {hosts} hosts: "
                f"run {hosts} processes, one per host",
            )
        if not workload.custom and workload.mesh.size != chips * pool.slices:
            raise field_error(
                f"{at}.mesh",
                f"data x fsdp x tensor = {workload.mesh.size} must equal the slices' chips: "
                f"{pool.slices} x {chips} = {chips * pool.slices}",
            )

    def _check_storage(self, at: str, workload: TrainingWorkload | InferenceWorkload) -> None:
        buckets = [b.name for b in self.storage.buckets]
        refs = {"checkpoints": workload.checkpoints}
        if isinstance(workload, TrainingWorkload):
            refs["data"] = workload.data
            if isinstance(workload.init_from, StorageRef):
                refs["init_from"] = workload.init_from
        else:
            refs["weights"] = workload.weights
        for field, ref in refs.items():
            if ref is not None and ref.bucket not in buckets:
                raise field_error(
                    f"{at}.{field}.bucket",
                    f"'{ref.bucket}' is not a bucket of this stack: {', '.join(buckets) or 'none'}",
                )
        if isinstance(workload, InferenceWorkload) and workload.from_training is not None:
            training = [w.name for w in self.workloads if isinstance(w, TrainingWorkload)]
            ours = [
                w.name
                for w in self.workloads
                if isinstance(w, TrainingWorkload) and not w.custom and w.program == "meshstack"
            ]
            if workload.from_training in training and workload.from_training not in ours:
                raise field_error(
                    f"{at}.from_training",
                    f"'{workload.from_training}' is not meshstack's trainer: meshstack's server reads only its "
                    "checkpoints (serve another program's model with engine vllm or custom)",
                )
            if workload.from_training not in training:
                raise field_error(
                    f"{at}.from_training",
                    f"no training workload '{workload.from_training}': {', '.join(training) or 'none'}",
                )
        for j, mount in enumerate(workload.mounts):
            kind, name = mount.source
            declared = [fs.name for fs in getattr(self.storage, kind)]
            if name not in declared:
                raise field_error(
                    f"{at}.mounts[{j}].{kind}", f"no {kind} file system '{name}': {', '.join(declared) or 'none'}"
                )

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
