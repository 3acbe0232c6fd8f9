"""Google Cloud as meshstack registers it: its catalog, its cluster names, and the rules only GKE has."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from meshstack.components.gcp.node_pools import node_pool_keys, too_long
from meshstack.core.catalog import Catalog
from meshstack.core.clouds import Cloud, TerraformProvider
from meshstack.core.validation import SpecModel, field_error
from meshstack.core.vocabulary import PINNED_MARKETS

if TYPE_CHECKING:
    from meshstack.core.spec.cluster import ClusterSpec
    from meshstack.core.spec.pool import NodePool
    from meshstack.core.spec.stack import StackSpec


LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")


class GcpSettings(SpecModel):
    """What gcp:project and gcp:zone set beside gcp:region (checked against the catalog's facts)."""

    project: str = Field(description="From gcp:project: the project the stack's resources are created in.")
    zone: str = Field(
        description="From gcp:zone: where TPU slices and GPU pools run, unless a pool names its own zone."
    )


def settings_of(spec: StackSpec) -> GcpSettings:
    """The stack's project and zone, as validated with the stack."""
    settings = spec.cloud_settings()
    assert isinstance(settings, GcpSettings), f"stack '{spec.name}' is not on GCP"
    return settings


def check_stack(spec: StackSpec) -> None:
    """The tags are labels, which allow less than AWS tags do; a GKE cluster sits in a VPC network named by
    `network`, and an existing one in the stack's region."""
    for key, value in spec.tags.items():
        if not LABEL_KEY.match(key) or not LABEL_VALUE.match(value):
            raise field_error(f"tags.{key}", "GCP labels hold only lowercase letters, digits, - and _")
    for name in ("vpc_id", "subnet_ids"):
        if getattr(spec.network, name) is not None:
            raise field_error(f"network.{name}", "names a network of another cloud, not GCP's")
    if spec.network.zones is not None:
        raise field_error(
            "network.zones", "lists AWS zone ids; on GCP the pools run in gcp:zone, or the zone a pool names"
        )
    for i, cluster in enumerate(spec.clusters):
        location = cluster.existing.location if cluster.existing is not None else None
        if location is not None and location != spec.region and not location.startswith(f"{spec.region}-"):
            raise field_error(
                f"clusters[{i}].existing.location", f"'{location}' is not {spec.region} or one of its zones"
            )


def check_cluster(cluster: ClusterSpec) -> None:
    """The node pools meshstack creates on GKE are named `<cluster>-<pool>[-<market>][-<n>]` plus Pulumi's
    suffix, which GKE takes up to 40 characters: a longer one would fail at `pulumi up`."""
    if cluster.existing is not None:
        return
    for i, pool in enumerate(cluster.node_pools):
        keys = node_pool_keys(pool.name, pool.slices, pool.markets, pool.instance_types or [])
        long = next((k for k in keys if too_long(cluster.name, k)), None)
        if long is not None:
            raise field_error(
                f"node_pools[{i}].name",
                f"GKE would refuse node pool '{cluster.name}-{long}-' plus Pulumi's 7 random characters "
                "(at most 40 in all): shorten the cluster's or the pool's name",
            )


def check_pool(pool: NodePool, catalog: Catalog) -> None:
    """What a GKE compute class can try in order: node pools of one machine type and one market each."""
    types = pool.instance_types or []
    if pool.fallback and catalog.is_tpu(pool.accelerator):
        generation = catalog.tpus[pool.accelerator]
        if pool.slices > 1 or generation.topologies[str(pool.topology)].hosts > 1:
            raise field_error(
                "fallback",
                "a TPU pool of several slices, or of a multi-host slice, is a node pool per slice created and "
                "removed whole, which a compute class cannot fall back between: use a single-host topology "
                "with one slice, or one market",
            )
    if pool.market in PINNED_MARKETS and len(types) > 1 and not pool.fallback:
        raise field_error(
            "instance_types[1]",
            f"a GKE reservation holds one machine type ({types[0]}): the other types would never launch; "
            "give them a market to fall back to (fallback: [on-demand]) or list one type",
        )


# GKE takes "a lowercase letter, then at most 39 lowercase letters, digits or hyphens, not ending with a
# hyphen" (read 2026-12-08).
CLOUD = Cloud(
    name="gcp",
    title="GCP",
    catalog=Path(__file__).with_name("catalog.yaml"),
    stack_template=Path(__file__).with_name("stack.yaml"),
    kubernetes_support=Path(__file__).with_name("kubernetes_support.yaml"),
    cluster_name=re.compile(r"^[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?$"),
    cluster_name_help="a GKE cluster name (lower-case letters, digits, -)",
    platform="meshstack.components.gcp.platform:platform",
    pricing="meshstack.components.gcp.pricing",
    image_registries=("-docker.pkg.dev/", "gcr.io/"),
    mocks="meshstack.components.gcp.mocks:GcpMocks",
    settings=GcpSettings,
    orders_fallback=True,
    check_stack=check_stack,
    check_cluster=check_cluster,
    check_pool=check_pool,
    terraform=TerraformProvider(
        "google", "registry.terraform.io/hashicorp/google", Path(__file__).with_name("terraform.json")
    ),
)
