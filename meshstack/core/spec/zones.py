"""Where each pool's nodes can run: the zone it names, and whether its accelerator is offered there.

A pool in a zone without its accelerator plans cleanly and fails at `pulumi up` (or, worse, its
autoscaler waits forever for nodes that cannot launch). The catalog lists the zones each machine
type and TPU generation is offered in, from the clouds' own tables; this check reads that list
the same way for every cloud.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from meshstack.core.catalog import Catalog
from meshstack.core.validation import field_error
from meshstack.core.vocabulary import PINNED_MARKETS

if TYPE_CHECKING:
    from meshstack.core.spec.pool import NodePool
    from meshstack.core.spec.stack import StackSpec


def pool_zone(spec: StackSpec, pool: NodePool) -> str | None:
    """The one zone the pool runs in: its own, or on a cloud that needs one, the stack's."""
    return pool.zone or spec.settings.get("zone")


def check_zones(spec: StackSpec, catalog: Catalog) -> None:
    for i, cluster in enumerate(spec.clusters):
        for j, pool in enumerate(cluster.node_pools):
            _check_pool(spec, catalog, f"clusters[{i}].node_pools[{j}]", pool)
    _check_lustre_zones(spec)


def _check_pool(spec: StackSpec, catalog: Catalog, at: str, pool: NodePool) -> None:
    network_zones = spec.network.zones
    if catalog.facts.zone_required:
        if pool.zone is not None and not pool.zone.startswith(f"{spec.region}-"):
            raise field_error(f"{at}.zone", f"'{pool.zone}' is not a zone of {spec.region}, such as {spec.region}-b")
        zones: Sequence[str] | None = [str(pool_zone(spec, pool))]
    else:
        if pool.zone is not None and (network_zones is None or pool.zone not in network_zones):
            listed = ", ".join(network_zones) if network_zones else "none: list the VPC's zone ids there"
            raise field_error(f"{at}.zone", f"'{pool.zone}' is not one of network.zones ({listed})")
        if pool.zone is None and pool.market in PINNED_MARKETS:
            raise field_error(
                f"{at}.zone",
                f"a {pool.market} sits in one availability zone: name its zone id (the reservation's "
                "AvailabilityZoneId), so the pool's subnet, and storage beside it, are pinned there",
            )
        zones = [pool.zone] if pool.zone is not None else network_zones
    offered = catalog.zones(str(pool.instance_type), spec.region)
    if offered is None:
        return
    what = pool.accelerator if catalog.is_tpu(pool.accelerator) else str(pool.instance_type)
    if not offered:
        field = f"{at}.accelerator" if catalog.is_tpu(pool.accelerator) else f"{at}.instance_type"
        regions = _regions(catalog, str(pool.instance_type))
        raise field_error(field, f"{what} is not offered in {spec.region}: the catalog lists it in {regions}")
    if zones is None:
        raise field_error(
            f"{at}.zone",
            f"{what} is offered only in {', '.join(offered)} of {spec.region}: name the pool's zone "
            "(and list the VPC's zone ids in network.zones)",
        )
    missing = [z for z in zones if z not in offered]
    if missing:
        have = f"zones that have it are {', '.join(offered)}"
        if pool.zone is None and not catalog.facts.zone_required:
            raise field_error(
                "network.zones", f"{what} (pool '{pool.name}') is not offered in {', '.join(missing)}: {have}"
            )
        whose = ":" if pool.zone is not None else " (the stack's zone): set the pool's zone;"
        raise field_error(f"{at}.zone", f"{what} is not offered in {', '.join(missing)}{whose} {have}")


def _regions(catalog: Catalog, instance_type: str) -> str:
    return ", ".join(sorted(catalog.offering(instance_type).zones or {}))


def _mounting_zones(spec: StackSpec, name: str) -> dict[str, str]:
    """The zones named by the pools of the workloads mounting Lustre file system `name`, each with the
    first such workload."""
    zones: dict[str, str] = {}
    for i, workload in enumerate(spec.workloads):
        if any(m.lustre == name for m in workload.mounts):
            zone = spec.pool_of(workload).zone
            if zone is not None:
                zones.setdefault(zone, f"workloads[{i}]")
    return zones


def _check_lustre_zones(spec: StackSpec) -> None:
    """A Lustre file system lives in one subnet: the pools mounting it must share that zone, or every
    read crosses zones (and pays for it)."""
    for fs in spec.storage.lustre:
        zones = _mounting_zones(spec, fs.name)
        if len(zones) > 1:
            where = ", ".join(f"{w} in {z}" for z, w in zones.items())
            raise field_error(
                f"storage.lustre.{fs.name}", f"is mounted from pools in different zones ({where}): keep them in one"
            )


def lustre_zone(spec: StackSpec, name: str) -> str | None:
    """The zone a Lustre file system belongs in: that of the pools mounting it, when they name one."""
    return next(iter(_mounting_zones(spec, name)), None)
