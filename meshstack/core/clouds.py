"""The clouds meshstack can build on, each one plugin: a `Cloud` found through the `meshstack.clouds`
entry-point group, the two built-in ones among them.

core never imports a cloud's package by its name. It reads what a registered `Cloud` declares:
the facts validation needs (its catalog, its cluster names, its own spec checks), and references
("module:attribute") to the parts above core (its platform, pricing and offline mocks), which the
program, the estimate and the preview load when they need them. So a cloud's code lives in one
package, and registering that package is one entry-point line.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshstack.core.errors import EXIT_INVALID, MeshstackError
from meshstack.core.validation import SpecModel

if TYPE_CHECKING:
    from meshstack.core.catalog import Catalog
    from meshstack.core.spec.cluster import ClusterSpec
    from meshstack.core.spec.pool import NodePool
    from meshstack.core.spec.stack import StackSpec

GROUP = "meshstack.clouds"
# The clouds meshstack ships, declared as the entry points a third-party package declares in its
# pyproject ([project.entry-points."meshstack.clouds"]): read from here rather than from the installed
# distribution's metadata, so a source checkout (the Pulumi program run from the repository) has them too.
BUILT_IN = (
    EntryPoint("aws", "meshstack.components.aws.cloud:CLOUD", GROUP),
    EntryPoint("gcp", "meshstack.components.gcp.cloud:CLOUD", GROUP),
)


@dataclass(frozen=True)
class TerraformProvider:
    """The Terraform provider a cloud's Pulumi provider is bridged from, for `preview --tf-plan`."""

    config_key: str
    """Its name in a plan's provider_config (google, aws)."""
    address: str
    """Its registry address (registry.terraform.io/hashicorp/google)."""
    table: Path
    """Its token-to-type table: each Pulumi type's Terraform type, and its blocks where they are not read
    from the installed SDK (tools/extract_bridge_metadata.py writes one)."""


class CloudError(MeshstackError, ValueError):
    """A cloud that is not registered, or a plugin that does not register a Cloud under its own name."""

    exit_code = EXIT_INVALID


def _no_check(_: Any, *__: Any) -> None:
    """A cloud with nothing of its own to check."""


class NoSettings(SpecModel):
    """A cloud whose provider keys set only the stack's region."""


@dataclass(frozen=True)
class Cloud:
    """Everything meshstack needs to know of one cloud, declared by the cloud's own package."""

    name: str
    """The spec's `cloud`, the entry point's name, and the Pulumi package whose resource types (`aws:...`)
    and stack-file keys (`aws:region`) are the cloud's."""
    title: str
    """How messages name it: AWS, GCP."""
    catalog: Path
    """Its catalog file: accelerators, instance types, prices, and the location facts the spec checks."""
    stack_template: Path
    """The first stack file `meshstack init --cloud <name>` writes (@PROJECT@ becomes the project's name)."""
    kubernetes_support: Path
    """When each Kubernetes version meshstack knows came out on the cloud and when its support ends."""
    cluster_name: re.Pattern[str]
    """What the cloud takes as a cluster's name (an existing cluster's is checked against it)."""
    cluster_name_help: str
    """The rule in words, for the error: "an EKS cluster name (letters, digits, - and _)"."""
    platform: str
    """"module:function" of its `platform(spec, pools) -> Platform`: the network, storage and clusters."""
    pricing: str
    """The module that prices its resources: `price(resource, ctx)`, `pool_shape(resource)`, `POOL_TYPES`."""
    mocks: str
    """"module:class" of its offline answers (`new_resource`, `call`), built with the stack's region."""
    settings: type[SpecModel] = NoSettings
    """Its own section of the spec: the fields its provider keys fill beside the region (GCP's project and
    zone, from gcp:project and gcp:zone), which validate the stack's `settings`."""
    orders_fallback: bool = False
    """Whether a pool of several types or markets is one node pool per type and market, which the
    cluster tries in order (a GKE compute class); else one pool (an EKS node group) takes them all."""
    autoscalers: tuple[str, ...] = ("cluster-autoscaler",)
    """The autoscalers a cluster on this cloud may run."""
    check_stack: Callable[[StackSpec], None] = _no_check
    """The cloud's own rules on a whole stack, raising `field_error` with the field's path."""
    check_cluster: Callable[[ClusterSpec], None] = _no_check
    """The cloud's own rules on a cluster it creates."""
    check_pool: Callable[[NodePool, Catalog], None] = _no_check
    """The cloud's own rules on one node pool, beside the catalog's."""
    image_registries: tuple[str, ...] = ()
    """What an image reference from its own registries contains (".dkr.ecr.", "gcr.io/"): an emitted
    stack refuses an image in another cloud's, which the pack's pod-images-allowed rule would refuse."""
    terraform: TerraformProvider | None = None
    """Its Terraform provider, for `preview --tf-plan`; None where no table covers it: its resources are
    then left out of the plan."""

    def owns(self, resource_type: str) -> bool:
        """Whether a resource type is one of the cloud's provider's."""
        return resource_type.startswith(f"{self.name}:")

    def load_platform(self) -> Callable[..., Any]:
        return _attribute(self.platform)

    def load_pricing(self) -> Any:
        return importlib.import_module(self.pricing)

    def load_mocks(self) -> type:
        found = _attribute(self.mocks)
        if not isinstance(found, type):
            raise CloudError(f"cloud '{self.name}': mocks '{self.mocks}' is not a class")
        return found


def _attribute(reference: str) -> Any:
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


@functools.cache
def registered() -> dict[str, Cloud]:
    """Every registered cloud by name: the built-in ones, then each installed plugin's (read once)."""
    found: dict[str, Cloud] = {}
    for point in (*BUILT_IN, *entry_points(group=GROUP)):
        if point.name in found:
            raise CloudError(
                f"entry point {GROUP}:{point.name} ({point.value}): cloud '{point.name}' is registered already"
            )
        cloud = point.load()
        if not isinstance(cloud, Cloud) or cloud.name != point.name:
            raise CloudError(
                f"entry point {GROUP}:{point.name} ({point.value}) must name a Cloud whose name is '{point.name}'"
            )
        found[point.name] = cloud
    return dict(sorted(found.items()))


def known_clouds() -> tuple[str, ...]:
    return tuple(registered())


def get(name: str) -> Cloud:
    cloud = registered().get(name)
    if cloud is None:
        raise CloudError(f"no cloud '{name}' is registered (known: {', '.join(registered())})")
    return cloud


def owner(resource_type: str) -> Cloud | None:
    """The cloud whose provider declares a resource type; None for Kubernetes, components and the rest."""
    return next((c for c in registered().values() if c.owns(resource_type)), None)
