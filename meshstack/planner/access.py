"""What an emitted stack says beyond the planned option (image, tags, endpoint access, zone, market,
environment, budget), every --emit-stack argument checked before the search runs; and the image checked
against the registries the policy pack allows."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshstack.core import clouds as cloud_registry
from meshstack.core.catalog import Catalog, InstanceType, TpuGeneration, load_catalog
from meshstack.core.errors import UsageError
from meshstack.core.stack_file import Project
from meshstack.core.vocabulary import STACK_NAME, STACK_NAME_RULE
from meshstack.planner.options import Option


class EmitError(UsageError):
    """The plan cannot be written as a stack file; nothing was written."""


def region_zones(catalog: Catalog, region: str) -> list[str]:
    """Every zone the catalog places anything of `region` in, in its order."""
    zones: dict[str, None] = {}
    offerings: list[InstanceType | TpuGeneration] = [*catalog.instance_types.values(), *catalog.tpus.values()]
    for offering in offerings:
        for zone in (offering.zones or {}).get(region, []):
            zones.setdefault(zone)
    return list(zones)


@dataclass(frozen=True)
class Access:
    """What the emitted stack says beyond the option: where it is deployed from, its cluster's endpoint
    reached from, and its zone, market, environment and budget."""

    image: str
    tags: Mapping[str, str]
    gcp_project: str | None = None
    deployer_cidrs: tuple[str, ...] = ()
    public_access_cidrs: tuple[str, ...] = ()
    zone: str | None = None
    market: str = "on-demand"
    reservation_id: str | None = None
    environment: str = "prod"
    budget: Mapping[str, float] = field(default_factory=dict)


def access_of(args: Any, project: Project, clouds: tuple[str, ...], region: str | None) -> Access:
    """Every --emit-stack argument checked before the search runs, so a bad one costs no search."""
    name = args.emit_stack
    if not re.match(STACK_NAME, name):
        raise EmitError(f"--emit-stack {name!r}: not a stack name ({STACK_NAME_RULE})")
    if project.stack_file(name).exists():
        raise EmitError(f"{project.stack_file(name)} exists: choose another --emit-stack name or remove the file")
    if not args.image:
        raise EmitError("--emit-stack needs --image, the container image holding meshstack")
    tags = {}
    for tag in args.tag:
        key, sep, value = tag.partition("=")
        if not sep or not key:
            raise EmitError(f"--tag {tag!r}: give KEY=VALUE, such as team=research")
        tags[key] = value
    if not args.deployer_cidr and not args.public_access_cidr:
        raise EmitError(
            "the cluster's API endpoint is private: give --deployer-cidr (the network `pulumi up` runs from) "
            "or --public-access-cidr"
        )
    for cidr in (*args.deployer_cidr, *args.public_access_cidr):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise EmitError(f"{cidr!r} is not a CIDR block such as 10.8.0.0/16") from None
    if "gcp" in clouds and args.gcp_project is None:
        raise EmitError("options on GCP need --gcp-project to be emitted: give it, or plan with --cloud aws")
    market = args.market or "on-demand"
    pinned = market in ("capacity-block", "reservation")
    if pinned != (args.reservation_id is not None):
        raise EmitError(
            f"--market {market} needs --reservation-id (the capacity block or reservation it launches into)"
            if pinned
            else "--reservation-id applies to --market capacity-block or reservation"
        )
    if args.zone is not None:
        if region is None:
            raise EmitError("--zone needs --region, the region the zone is in")
        catalog = load_catalog(cloud=clouds[0])
        known = region_zones(catalog, region)
        if catalog.facts.zone_required and not args.zone.startswith(f"{region}-"):
            raise EmitError(f"--zone {args.zone}: not a zone of {region}, such as {region}-a")
        if not catalog.facts.zone_required and known and args.zone not in known:
            raise EmitError(f"--zone {args.zone}: not a zone id of {region} the catalog knows ({', '.join(known)})")
    return Access(
        args.image,
        tags,
        args.gcp_project,
        tuple(args.deployer_cidr),
        tuple(args.public_access_cidr),
        args.zone,
        market,
        args.reservation_id,
        args.environment or "prod",
        dict(args.budget_limits),
    )


def check_image(option: Option, image: str, gcp_project: str | None) -> None:
    """An image the pack's pod-images-allowed rule refuses by default for the stack being written: another
    cloud's registry, another region's ECR, another project's Artifact Registry."""
    rule = "as the policy pack's pod-images-allowed rule requires by default; mirror it there"
    ours = cloud_registry.get(option.cloud)
    for other in cloud_registry.registered().values():
        if other is not ours and any(h in image for h in other.image_registries):
            raise EmitError(
                f"--image {image} is in {other.title}'s registry; a {ours.title} stack pulls from its "
                f"own ({' or '.join(ours.image_registries)}), {rule}"
            )
    ecr = re.match(r"^\d{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/", image)
    if ecr and ecr.group(1) != option.region:
        raise EmitError(
            f"--image {image} is in {ecr.group(1)}'s ECR; a {option.region} stack pulls from its own, {rule}"
        )
    registry = re.match(r"^[a-z0-9-]+-docker\.pkg\.dev/([^/]+)/", image)
    if registry and gcp_project and registry.group(1) != gcp_project:
        raise EmitError(f"--image {image} is in project {registry.group(1)}; the stack's is {gcp_project}, {rule}")
