"""Cost rules: what a stack may spend and how its capacity must be bounded."""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from meshstack.core.catalog import Catalog, CatalogError, known_clouds, load_catalog
from meshstack.core.pricing import PoolShape, count, quantity
from meshstack.core.resources import ResourceView
from meshstack.core.types import GKE_NODE_POOL, GOVERNANCE
from meshstack.cost import plan_estimate, pool_shape, pool_types
from meshstack.policies.rule import Finding, RuleSet, as_list, as_map, get, number, string_map, text


def budget(resources: Sequence[ResourceView]) -> Mapping[str, Any]:
    """The stack's own limits, declared by meshstack.program.build as a governance resource."""
    return next((r.props for r in resources if r.type == GOVERNANCE), {})


def catalog_of(resources: Sequence[ResourceView]) -> Catalog:
    """The catalog of the stack's cloud: the budget says which, else the resources' provider does."""
    cloud = budget(resources).get("cloud")
    if not isinstance(cloud, str) or cloud not in known_clouds():
        packages = {r.type.split(":", 1)[0] for r in resources}
        cloud = next((c for c in known_clouds() if c in packages), "aws")
    return load_catalog(cloud=cloud)


def accelerators_per_node(shape: PoolShape, catalog: Catalog) -> int:
    known = catalog.instance_types.get(shape.instance_type)
    return known.accelerators if known else 0


def _limit(config: Mapping[str, Any], key: str, resources: Sequence[ResourceView]) -> float | None:
    """The pack's config wins; otherwise the limit the stack file states."""
    value = config.get(key)
    if value is None:
        value = budget(resources).get(key)
    return number(value)


ASG = "aws:autoscaling/group:Group"
GKE_CLUSTER = "gcp:container/cluster:Cluster"
# Groups of nodes that are no meshstack pool type but scale all the same: Auto Scaling groups, and the
# node pools a GKE cluster declares inline.
SCALING_TYPES = (*pool_types(), ASG, GKE_CLUSTER)
# Resources whose cost labels sit below the top level: a GKE pool labels its VMs through its node config.
NESTED_TAGS = {"gcp:container/nodePool:NodePool": ("nodeConfig", "resourceLabels")}

RULES = RuleSet()


@RULES.rule(
    id="MS-COST-001",
    name="accelerator-cap",
    description="The stack cannot scale past its accelerator cap.",
    severity="high",
    enforcement="mandatory",
    kind="stack",
    resource_types=(GOVERNANCE, *pool_types()),
    config={"max_accelerators": {"type": "number", "description": "Overrides meshstack:budget.max_accelerators."}},
    remediation="Lower the node pools' max_nodes, or raise meshstack:budget.max_accelerators with sign-off.",
)
def accelerator_cap(resources: Sequence[ResourceView], config: Mapping[str, Any]) -> Iterable[Finding]:
    limit = _limit(config, "max_accelerators", resources)
    if limit is None:
        return
    catalog = catalog_of(resources)
    total, parts = 0, []
    for group in (r for r in resources if r.type in pool_types()):
        shape = pool_shape(group)
        count = (shape.max_nodes or 0) * accelerators_per_node(shape, catalog)
        if count:
            total += count
            parts.append(f"{group.name}: {count}")
    if total > limit:
        yield Finding(f"the stack can scale to {total} accelerators ({'; '.join(parts)}), over the cap of {limit:g}")


@RULES.rule(
    id="MS-COST-002",
    name="stack-cost-cap",
    description="The stack's estimated cost while its workloads run stays under its hourly and monthly caps.",
    severity="high",
    enforcement="mandatory",
    kind="stack",
    resource_types=(GOVERNANCE, *pool_types()),
    config={"max_hourly_usd": {"type": "number"}, "max_monthly_usd": {"type": "number"}},
    remediation="Run fewer or smaller workloads (or fewer max replicas), use spot or smaller instance types, "
    "or raise meshstack:budget with sign-off.",
)
def cost_cap(resources: Sequence[ResourceView], config: Mapping[str, Any]) -> Iterable[Finding]:
    report = plan_estimate(resources, catalog_of(resources))
    hourly, monthly = _limit(config, "max_hourly_usd", resources), _limit(config, "max_monthly_usd", resources)
    # The running figure: every pool at the nodes the stack's own workloads need. The accelerator cap
    # bounds what the pools could grow to beyond that.
    if hourly is not None and report.running_hourly_usd > hourly:
        yield Finding(
            f"while its workloads run the stack costs ${report.running_hourly_usd:,.2f}/hour, "
            f"over the cap of ${hourly:,.2f}/hour"
        )
    if monthly is not None and report.running_monthly_usd > monthly:
        yield Finding(
            f"while its workloads run the stack costs ${report.running_monthly_usd:,.0f}/month, "
            f"over the cap of ${monthly:,.0f}/month"
        )


@RULES.rule(
    id="MS-COST-008",
    name="stack-energy-cap",
    description="The stack's estimated energy while its workloads run stays under its monthly kWh cap.",
    severity="medium",
    enforcement="mandatory",
    kind="stack",
    resource_types=(GOVERNANCE, *pool_types()),
    config={"max_monthly_kwh": {"type": "number", "description": "Overrides meshstack:budget.max_monthly_kwh."}},
    remediation="Run fewer or smaller workloads, pick a more efficient accelerator, or raise "
    "meshstack:budget.max_monthly_kwh with sign-off.",
)
def energy_cap(resources: Sequence[ResourceView], config: Mapping[str, Any]) -> Iterable[Finding]:
    limit = _limit(config, "max_monthly_kwh", resources)
    if limit is None:
        return
    energy = plan_estimate(resources, catalog_of(resources)).energy
    if energy.running_monthly_kwh > limit:
        yield Finding(
            f"while its workloads run the stack draws {energy.running_monthly_kwh:,.0f} kWh/month, "
            f"over the cap of {limit:,.0f} kWh/month"
        )


def max_sizes(resource: ResourceView) -> list[tuple[str, int | None]]:
    """(what, how many nodes it may grow to) for each group of nodes the resource declares."""
    if resource.type in pool_types():
        return [(f"node group '{resource.name}'", pool_shape(resource).max_nodes)]
    if resource.type == ASG:
        return [(f"Auto Scaling group '{resource.name}'", count(resource.props.get("maxSize")))]
    pools = [p for p in as_list(resource.props.get("nodePools")) if isinstance(p, Mapping)]
    return [
        (
            f"cluster '{resource.name}' node pool '{text(p.get('name'))}'",
            pool_shape(ResourceView("", GKE_NODE_POOL, "", "", p)).max_nodes,
        )
        for p in pools
    ]


@RULES.rule(
    id="MS-COST-003",
    name="node-group-max-size",
    description="Node groups (EKS node groups, Auto Scaling groups, GKE pools, separate or inline, counted per "
    "zone or in total) have a bounded max size.",
    severity="medium",
    enforcement="mandatory",
    resource_types=SCALING_TYPES,
    config={"max_nodes": {"type": "integer", "default": 64}},
    remediation="Set the pool's max_nodes at or under this rule's max_nodes.",
)
def node_group_max_size(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    limit = count(config["max_nodes"])
    for what, size in max_sizes(resource):
        if size is None:
            yield f"{what} has no max size"
        elif limit is not None and size > limit:
            yield f"{what} can grow to {size} nodes, over the limit of {limit}"


@RULES.rule(
    id="MS-COST-004",
    name="dev-spot-or-scale-to-zero",
    description="Development stacks run node groups on spot or let them scale to zero.",
    severity="medium",
    enforcement="mandatory",
    kind="stack",
    resource_types=(GOVERNANCE, *pool_types()),
    config={"environments": {"type": "array", "items": {"type": "string"}, "default": ["dev"]}},
    remediation="Set market: spot or min_nodes: 0 on the pool.",
)
def dev_spot_or_zero(resources: Sequence[ResourceView], config: Mapping[str, Any]) -> Iterable[Finding]:
    if budget(resources).get("environment") not in config["environments"]:
        return
    for group in (r for r in resources if r.type in pool_types()):
        shape = pool_shape(group)
        if not (shape.market == "spot" or shape.min_nodes == 0):
            yield Finding(f"node group '{group.name}' is on-demand and never scales to zero", group.urn)


@RULES.rule(
    id="MS-COST-005",
    name="training-job-deadline",
    description="Training jobs carry a deadline and a TTL after they finish.",
    severity="medium",
    enforcement="mandatory",
    resource_types=("kubernetes:batch/v1:Job", "kubernetes:jobset.x-k8s.io/*:JobSet"),
    remediation="Set activeDeadlineSeconds on each job and ttlSecondsAfterFinished on the job or JobSet.",
)
def job_deadline(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    spec = as_map(resource.props.get("spec"))
    if resource.type.endswith(":JobSet"):
        jobs = [as_map(get(job, "template", "spec")) for job in as_list(spec.get("replicatedJobs"))]
    else:
        jobs = [spec]
    if any(job.get("activeDeadlineSeconds") is None for job in jobs):
        yield f"training job '{resource.name}' has no activeDeadlineSeconds: a hung job runs forever"
    if spec.get("ttlSecondsAfterFinished") is None:
        yield f"training job '{resource.name}' has no ttlSecondsAfterFinished: finished pods are never cleaned up"


@functools.cache
def tag_property(resource_type: str) -> str | None:
    """Where a provider resource takes its tags (AWS `tags`, GCP `labels` or `resourceLabels`), read from its
    own signature (the SDK is pulumi_<package>); None for a resource that takes none."""
    try:
        package, module, name = resource_type.split(":")
        style = load_catalog(cloud=package).facts.tag_style
        cls = getattr(importlib.import_module(f"pulumi_{package}.{module.split('/')[0]}"), name)
        parameters = inspect.signature(cls._internal_init).parameters
    except (CatalogError, ValueError, ImportError, AttributeError):
        return None
    # Where tags are labels (GCP), `tags` are resource-manager tags, not the labels costs are allocated by.
    candidates = (
        [("tags", "tags")] if style == "tags" else [("labels", "labels"), ("resource_labels", "resourceLabels")]
    )
    return next((prop for python, prop in candidates if python in parameters), None)


@RULES.rule(
    id="MS-COST-006",
    name="required-tags",
    description="Taggable AWS resources carry the cost-allocation tags, and labelled GCP resources the labels.",
    severity="medium",
    enforcement="mandatory",
    resource_types=("aws:*", "gcp:*"),
    config={"required": {"type": "array", "items": {"type": "string"}, "default": ["team", "project", "cost-center"]}},
    remediation="Set the tags in meshstack:tags; meshstack's components put them on every taggable resource.",
)
def required_tags(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    if resource.type in NESTED_TAGS:
        tags = string_map(get(resource.props, *NESTED_TAGS[resource.type]))
    else:
        prop = tag_property(resource.type)
        if prop is None:
            return
        # A map, or (an Auto Scaling group's) a list of {key, value, propagateAtLaunch}.
        tags = string_map(resource.props.get(prop))
    missing = [str(t) for t in config["required"] if not tags.get(t)]
    if missing:
        yield f"'{resource.name}' lacks the cost-allocation tags {', '.join(missing)}"


@RULES.rule(
    id="MS-COST-007",
    name="storage-size-cap",
    description="File systems and volumes stay under their size caps.",
    severity="medium",
    enforcement="advisory",
    resource_types=(
        "aws:fsx/lustreFileSystem:LustreFileSystem",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "aws:ebs/volume:Volume",
    ),
    config={
        "max_lustre_gib": {"type": "number", "default": 100800},
        "max_volume_gib": {"type": "number", "default": 2048},
    },
    remediation="Shrink the file system or volume, or raise the cap in the stack's policy config.",
)
def storage_size_cap(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    if resource.type == "aws:fsx/lustreFileSystem:LustreFileSystem":
        size = quantity(resource.props.get("storageCapacity"))
        if size > config["max_lustre_gib"]:
            yield f"FSx for Lustre '{resource.name}' is {size:g} GiB, over the cap of {config['max_lustre_gib']} GiB"
    elif resource.type == "aws:ebs/volume:Volume":
        size = quantity(resource.props.get("size"))
        if size > config["max_volume_gib"]:
            yield f"'{resource.name}' is a {size:g} GiB volume, over the cap of {config['max_volume_gib']} GiB"
    else:
        for mapping in as_list(resource.props.get("blockDeviceMappings")):
            size = quantity(get(mapping, "ebs", "volumeSize"))
            if size > config["max_volume_gib"]:
                yield f"'{resource.name}' has a {size:g} GiB volume, over the cap of {config['max_volume_gib']} GiB"
