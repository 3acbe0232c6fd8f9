"""A planned option as a stack file meshstack can deploy: the cluster, its pools, the buckets and the
workload, checked against the spec before it is written.

meshstack's own trainer shards over a (data, fsdp, tensor) mesh whose axes must divide the model's
dimensions and does not recompute activations, so the emitted stack may take more nodes than the
planned option (the smallest count whose mesh divides the model and fits without recomputation);
the caller prints what it wrote.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshstack.core import sizing
from meshstack.core.catalog import Catalog, InstanceType, TpuGeneration, load_catalog
from meshstack.core.engines import vllm
from meshstack.core.errors import SpecError, UsageError
from meshstack.core.kubernetes import default_version, support_date
from meshstack.core.spec import StackSpec
from meshstack.core.stack_file import Project, spec_from_config
from meshstack.core.vocabulary import STACK_NAME, STACK_NAME_RULE
from meshstack.planner.options import Option, PlanRequest

NODE_SEARCH = 2  # try node counts up to this multiple of the planned one


class EmitError(UsageError):
    """The plan cannot be written as a stack file; nothing was written."""


def _system_pool(catalog: Catalog, environment: str) -> dict[str, Any]:
    """The cheapest CPU type with at least 4 vCPUs, for the add-ons; on spot in a dev stack, which the cost
    rules require to run on spot or scale to zero."""
    name = min(
        (n for n, t in catalog.instance_types.items() if t.accelerator == "cpu" and t.vcpus >= 4),
        key=lambda n: catalog.instance_types[n].price_per_hour or math.inf,
    )
    pool = {"name": "system", "accelerator": "cpu", "instance_type": name, "min_nodes": 1, "max_nodes": 3}
    return {**pool, "market": "spot"} if environment == "dev" else pool


def region_zones(catalog: Catalog, region: str) -> list[str]:
    """Every zone the catalog places anything of `region` in, in its order."""
    zones: dict[str, None] = {}
    offerings: list[InstanceType | TpuGeneration] = [*catalog.instance_types.values(), *catalog.tpus.values()]
    for offering in offerings:
        for zone in (offering.zones or {}).get(region, []):
            zones.setdefault(zone)
    return list(zones)


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


def _model(request: PlanRequest) -> dict[str, Any]:
    model = request.model
    if not model.d_ff:
        raise EmitError("the stack file needs the feed-forward width: give --d-ff or a --preset")
    seq = request.seq_len if request.mode == "train" else request.prompt_tokens + request.output_tokens
    if model.family != "llama":
        raise EmitError(
            f"a {model.family} model is not one meshstack's trainer and server build (the Llama family only)"
        )
    out = {
        "vocab_size": model.vocab,
        "hidden_size": model.d_model,
        "num_hidden_layers": model.layers,
        "num_attention_heads": model.heads,
        "num_key_value_heads": model.kv_heads,
        "intermediate_size": model.d_ff,
        "max_position_embeddings": seq,
        "tie_word_embeddings": model.tied,
    }
    if model.head_dim_override:
        out["head_dim"] = model.head_dim_override
    return out


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


def _meshes(devices: int, tensor: int, d_model: int, d_ff: int, heads: int, kv_heads: int) -> list[dict[str, int]]:
    """(data, fsdp, tensor) layouts over `devices` whose axes divide the model, widest FSDP first."""
    out = []
    for t in (tensor, 2 * tensor, 4 * tensor, 8 * tensor):
        if t > 8 or devices % t or heads % t or kv_heads % t or d_ff % t:
            continue
        ranks = devices // t
        for fsdp in sorted((f for f in range(1, ranks + 1) if ranks % f == 0), reverse=True):
            if d_model % fsdp == 0 and d_ff % fsdp == 0:
                out.append({"data": ranks // fsdp, "fsdp": fsdp, "tensor": t})
    return out


def _training(name: str, request: PlanRequest, mesh: Mapping[str, int], image: str) -> dict[str, Any]:
    ranks = mesh["data"] * mesh["fsdp"]
    global_batch = math.ceil(request.global_batch / ranks) * ranks
    steps = math.ceil(request.tokens / (global_batch * request.seq_len))
    return {
        "train": {
            "steps": steps,
            "global_batch": global_batch,
            "seq_len": request.seq_len,
            "micro_batches": global_batch // ranks,
            "learning_rate": 0.0003,
            "warmup_steps": min(2000, max(steps // 100, 1)),
            "compute_dtype": "bfloat16",
            "checkpoint_every": max(min(1000, steps // 20), 1),
            "keep_checkpoints": 3,
            "log_every": 10,
        },
        "data": {"bucket": "data", "prefix": "tokens"},
        "checkpoints": {"bucket": "checkpoints", "prefix": name},
        "image": image,
    }


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
        base = {"name": name, "cluster": name, "node_pool": "accelerators", "model": _model(request)}
        if request.mode == "train":
            model = request.model
            meshes = _meshes(
                devices, int(option.layout["tensor"]), model.d_model, model.d_ff, model.heads, model.kv_heads
            )
            if option.topology is not None:
                slices = nodes // step
                meshes = [m for m in meshes if m["data"] % slices == 0]
            candidates = [
                {**base, "kind": "training", "processes": nodes, "mesh": mesh, **_training(name, request, mesh, image)}
                for mesh in meshes
            ]
        else:
            candidates = [{**base, **_serving(name, request, option, image)}]
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


REGISTRIES = {"aws": (".dkr.ecr.", "public.ecr.aws/"), "gcp": ("-docker.pkg.dev/", "gcr.io/")}


def check_image(option: Option, image: str, gcp_project: str | None) -> None:
    """An image the pack's pod-images-allowed rule refuses by default for the stack being written: another
    cloud's registry, another region's ECR, another project's Artifact Registry."""
    rule = "as the policy pack's pod-images-allowed rule requires by default; mirror it there"
    for other, hosts in REGISTRIES.items():
        if other != option.cloud and any(h in image for h in hosts):
            own = " or ".join(REGISTRIES[option.cloud])
            raise EmitError(
                f"--image {image} is in {other.upper()}'s registry; a {option.cloud.upper()} stack pulls from its "
                f"own ({own}), {rule}"
            )
    ecr = re.match(r"^\d{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/", image)
    if ecr and ecr.group(1) != option.region:
        raise EmitError(
            f"--image {image} is in {ecr.group(1)}'s ECR; a {option.region} stack pulls from its own, {rule}"
        )
    registry = re.match(r"^[a-z0-9-]+-docker\.pkg\.dev/([^/]+)/", image)
    if registry and gcp_project and registry.group(1) != gcp_project:
        raise EmitError(f"--image {image} is in project {registry.group(1)}; the stack's is {gcp_project}, {rule}")


# What the planner's int8 (weight-only, one scale per output channel) is called in vLLM v0.34.0.
VLLM_QUANTIZATION = {"int8": "int8_per_channel_weight_only"}


def mirrored(image: str, upstream: str) -> str:
    """`upstream` beside `image` in the registry it comes from (the same host, and the same project and
    repository where the registry has them, as Artifact Registry does): where a stack whose pack pins
    registries pulls it."""
    first = image.split("/", 1)[0]
    if "." not in first and ":" not in first:
        return upstream
    repository = image.split("@", 1)[0].rsplit("/", 1)[0] if "/" in image else first
    return f"{repository}/{upstream}"


def _serving(name: str, request: PlanRequest, option: Option, image: str) -> dict[str, Any]:
    """meshstack's server where one device holds a replica; vLLM (tensor parallel over the replica's
    devices) where the model needs several, as for a 70B model: meshstack's server serves only its own
    checkpoints, and a model that large is one a team brings."""
    replicas, devices = int(option.layout["replicas"]), int(option.layout["devices_per_replica"])
    scale = {"devices_per_replica": devices, "min_replicas": 1, "max_replicas": replicas}
    if devices == 1:
        serve: dict[str, Any] = {"max_batch_size": int(option.layout["batch"]), "max_new_tokens": request.output_tokens}
        if request.quantization:
            serve["quantization"] = request.quantization
        return {
            "kind": "inference",
            "image": image,
            "checkpoints": {"bucket": "checkpoints", "prefix": name},
            **scale,
            "serve": serve,
        }
    settings: dict[str, Any] = {"max_num_seqs": int(option.layout["batch"])}
    if request.quantization:
        settings["quantization"] = VLLM_QUANTIZATION[request.quantization]
    precision = request.quantization or ("bf16" if request.precision == "fp32" else request.precision)
    return {
        "kind": "inference",
        "engine": "vllm",
        "image": mirrored(image, vllm.facts().images["gpu"]),
        "weights": {"bucket": "checkpoints", "prefix": f"models/{name}"},
        # The planned model's own size (its attention's KV heads included), which the shape the stack file
        # takes (meshstack's multi-head model) would overstate.
        "weights_gib": round(sizing.weights_bytes(request.model, precision) / sizing.GIB, 1),
        **scale,
        "vllm": settings,
    }


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
