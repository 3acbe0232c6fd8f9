"""A planned option as a stack file meshstack can deploy: the cluster, its pools, the buckets and the
workload, checked against the spec before it is written.

meshstack's own trainer shards over a (data, fsdp, tensor) mesh whose axes must divide the model's
dimensions and does not recompute activations, so the emitted stack may take more nodes than the
planned option (the smallest count whose mesh divides the model and fits without recomputation);
the caller prints what it wrote.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from meshstack.core.catalog import Catalog, load_catalog
from meshstack.core.errors import SpecError
from meshstack.core.kubernetes import default_version, support_date
from meshstack.core.spec import StackSpec
from meshstack.core.stack_file import Project, spec_from_config
from meshstack.planner.access import Access, EmitError, check_image, region_zones
from meshstack.planner.emitted_workload import meshes_of, model_config, serving_entry, training_entry
from meshstack.planner.options import Option, PlanRequest

NODE_SEARCH = 2  # try node counts up to this multiple of the planned one


def _system_pool(catalog: Catalog, environment: str) -> dict[str, Any]:
    """The cheapest CPU type with at least 4 vCPUs, for the add-ons; on spot in a dev stack, which the cost
    rules require to run on spot or scale to zero."""
    name = min(
        (n for n, t in catalog.instance_types.items() if t.accelerator == "cpu" and t.vcpus >= 4),
        key=lambda n: catalog.instance_types[n].price_per_hour or math.inf,
    )
    pool = {"name": "system", "accelerator": "cpu", "instance_type": name, "min_nodes": 1, "max_nodes": 3}
    return {**pool, "market": "spot"} if environment == "dev" else pool


def _pool_zone(catalog: Catalog, option: Option, access: Access) -> str | None:
    """The zone the accelerator pool is pinned to: the one asked for, else, where the type runs in only some
    of the region's zones or the market is one zone's (a capacity block, a reservation), the first of the
    zones the catalog lists for it."""
    if access.zone is not None:
        return access.zone
    offered = catalog.zones(option.instance_type, option.region)
    if catalog.facts.zone_required:
        return (offered or [f"{option.region}-a"])[0]
    if offered or access.market in ("capacity-block", "reservation"):
        candidates = offered or region_zones(catalog, option.region)
        return candidates[0] if candidates else None
    return None


def _location(catalog: Catalog, option: Option, access: Access, zone: str | None) -> dict[str, Any]:
    """The option's region, and where the cloud needs them its project and zone; on AWS, a pool pinned to a
    zone brings the VPC's zone ids with it (that zone and another of the region's)."""
    keys = catalog.facts.config_keys
    if catalog.facts.project_pattern is not None:
        if access.gcp_project is None:
            raise EmitError(f"the chosen option runs on {catalog.cloud.upper()}: name the project with --gcp-project")
        return {keys["project"]: access.gcp_project, keys["region"]: option.region, keys["zone"]: zone}
    located: dict[str, Any] = {keys["region"]: option.region}
    if zone is not None:
        others = [z for z in region_zones(catalog, option.region) if z != zone]
        if not others:
            raise EmitError(f"the catalog knows no second zone of {option.region} for the VPC beside {zone}")
        located["meshstack:network"] = {"availability_zones": 2, "zones": [zone, others[0]], "nat_gateways": "single"}
    return located


def _pool(option: Option, nodes: int, access: Access, zone: str | None) -> dict[str, Any]:
    pool: dict[str, Any] = {"name": "accelerators", "accelerator": option.accelerator, "min_nodes": 0}
    if option.topology is not None:
        hosts = option.nodes // option.slices
        pool.update(topology=option.topology, slices=nodes // hosts, max_nodes=hosts)
    else:
        pool.update(instance_type=option.instance_type, max_nodes=nodes)
    if zone is not None:
        pool["zone"] = zone
    if access.market != "on-demand":
        pool["market"] = access.market
    if access.reservation_id is not None:
        pool.update(reservation_id=access.reservation_id, reserved_nodes=nodes)
    return pool


def _config(
    name: str,
    request: PlanRequest,
    option: Option,
    nodes: int,
    workload: dict[str, Any],
    access: Access,
    accelerators: int,
) -> dict[str, Any]:
    catalog = load_catalog(cloud=option.cloud)
    state_gib = request.model.params * 16 / 2**30
    zone = _pool_zone(catalog, option, access)
    return {
        **_location(catalog, option, access, zone),
        "meshstack:environment": access.environment,
        "meshstack:tags": {"project": name, **access.tags},
        "meshstack:clusters": [
            {
                "name": name,
                "kubernetes_version": default_version(option.cloud, support_date()),
                "deployer_cidrs": list(access.deployer_cidrs),
                "public_access_cidrs": list(access.public_access_cidrs),
                "node_pools": [_system_pool(catalog, access.environment), _pool(option, nodes, access, zone)],
            }
        ],
        "meshstack:storage": {
            "buckets": [
                {"name": "data", "size_gib": math.ceil(request.tokens * 2 / 2**30) if request.tokens else 100},
                {"name": "checkpoints", "size_gib": math.ceil(state_gib * 3)},
            ]
        },
        "meshstack:budget": {"max_accelerators": accelerators, **access.budget},
        "meshstack:workloads": [workload],
    }


def stack_config(name: str, request: PlanRequest, option: Option, access: Access) -> tuple[dict[str, Any], StackSpec]:
    """The first stack for `option` that meshstack's spec accepts, with the spec it validates to."""
    image = access.image
    check_image(option, image, access.gcp_project)
    per_node = option.devices // option.nodes
    problems: list[str] = []
    step = option.nodes // option.slices if option.topology else 1
    for nodes in range(option.nodes, option.nodes * NODE_SEARCH + 1, step):
        devices = nodes * per_node
        base = {"name": name, "cluster": name, "node_pool": "accelerators", "model": model_config(request)}
        if request.mode == "train":
            model = request.model
            meshes = meshes_of(
                devices, int(option.layout["tensor"]), model.d_model, model.d_ff, model.heads, model.kv_heads
            )
            if option.topology is not None:
                slices = nodes // step
                meshes = [m for m in meshes if m["data"] % slices == 0]
            candidates = [
                {
                    **base,
                    "kind": "training",
                    "processes": nodes,
                    "mesh": mesh,
                    **training_entry(name, request, mesh, image),
                }
                for mesh in meshes
            ]
        else:
            candidates = [{**base, **serving_entry(name, request, option, image)}]
        for workload in candidates:
            # The cap the pools can scale to, which the accelerator-cap rule counts: every node of the pool.
            config = _config(name, request, option, nodes, workload, access, devices)
            try:
                return config, spec_from_config(name, config)
            except SpecError as exc:
                problems.append(str(exc))
    raise EmitError(f"meshstack's own workload cannot run {option.label}: {_closest(problems)}")


def _closest(problems: list[str]) -> str:
    """The refusal of the candidate that came nearest: the least memory a device lacked, else the last one."""
    if not problems:
        return "no mesh over its devices divides the model"
    needs = [(float(m.group(1)), p) for p in problems if (m := re.search(r"needs ([\d.]+) GiB per", p))]
    if not needs:
        return problems[-1]
    closest = min(needs)[1]
    return (
        f"{closest}; meshstack's trainer keeps every layer's activations (it does not recompute them): "
        "try a shorter --seq-len, or a program of your own that recomputes"
    )


def write_stack(project: Project, name: str, config: dict[str, Any], header: str) -> Path:
    """Writes the project's Pulumi.<name>.yaml whole (through a temporary file); never over an existing file."""
    path = project.stack_file(name)
    if path.exists():
        raise EmitError(f"{path} exists: choose another --emit-stack name or remove the file")
    partial = path.with_name(f".{path.name}.partial")
    modeline = MODELINE if (path.parent / "stack.schema.json").is_file() else ""
    partial.write_text(modeline + header + yaml.safe_dump({"config": config}, sort_keys=False))
    partial.replace(path)
    return path


# Where the project has the schema `meshstack init` writes beside its stack files, editors find it.
MODELINE = "# yaml-language-server: $schema=stack.schema.json\n"
