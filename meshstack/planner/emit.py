"""A planned option as a stack file meshstack can deploy: the cluster, its pools, the buckets and the
workload, checked against the spec before it is written.

meshstack's own trainer shards over a (data, fsdp, tensor) mesh whose axes must divide the model's
dimensions and does not recompute activations, so the emitted stack may take more nodes than the
planned option (the smallest count whose mesh divides the model and fits without recomputation);
the caller prints what it wrote.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from meshstack.core.catalog import Catalog, load_catalog
from meshstack.core.engines import vllm
from meshstack.core.errors import SpecError, UsageError
from meshstack.core.kubernetes import SUPPORTED_VERSIONS
from meshstack.core.spec import StackSpec
from meshstack.core.stack_file import Project, spec_from_config
from meshstack.planner.search import Option, PlanRequest

NODE_SEARCH = 2  # try node counts up to this multiple of the planned one


class EmitError(UsageError):
    """The plan cannot be written as a stack file; nothing was written."""


def _system_pool(catalog: Catalog) -> dict[str, Any]:
    """The cheapest CPU type with at least 4 vCPUs, for the add-ons."""
    name = min(
        (n for n, t in catalog.instance_types.items() if t.accelerator == "cpu" and t.vcpus >= 4),
        key=lambda n: catalog.instance_types[n].price_per_hour,
    )
    return {"name": "system", "accelerator": "cpu", "instance_type": name, "min_nodes": 1, "max_nodes": 3}


def _location(catalog: Catalog, instance_type: str, gcp_project: str | None) -> dict[str, Any]:
    """The catalog's region, and on a cloud that needs one the first zone of it offering the option's type."""
    region = catalog.prices.region
    if catalog.facts.project_pattern is None:
        return {catalog.facts.config_keys["region"]: region}
    if gcp_project is None:
        raise EmitError(f"the chosen option runs on {catalog.cloud.upper()}: name the project with --gcp-project")
    keys = catalog.facts.config_keys
    zone = (catalog.zones(instance_type, region) or [f"{region}-a"])[0]
    return {keys["project"]: gcp_project, keys["region"]: region, keys["zone"]: zone}


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


def _pool(option: Option, nodes: int) -> dict[str, Any]:
    if option.topology is not None:
        hosts = option.nodes // option.slices
        return {
            "name": "accelerators",
            "accelerator": option.accelerator,
            "topology": option.topology,
            "slices": nodes // hosts,
            "min_nodes": 0,
            "max_nodes": hosts,
        }
    return {
        "name": "accelerators",
        "accelerator": option.accelerator,
        "instance_type": option.instance_type,
        "min_nodes": 0,
        "max_nodes": nodes,
    }


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
    """Where the emitted stack is deployed from and its cluster's endpoint reached from."""

    image: str
    tags: Mapping[str, str]
    gcp_project: str | None = None
    deployer_cidrs: tuple[str, ...] = ()
    public_access_cidrs: tuple[str, ...] = ()


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
    return {
        **_location(catalog, option.instance_type, access.gcp_project),
        "meshstack:environment": "prod",
        "meshstack:tags": {"project": name, **access.tags},
        "meshstack:clusters": [
            {
                "name": name,
                "kubernetes_version": SUPPORTED_VERSIONS[-2],
                "deployer_cidrs": list(access.deployer_cidrs),
                "public_access_cidrs": list(access.public_access_cidrs),
                "node_pools": [_system_pool(catalog), _pool(option, nodes)],
            }
        ],
        "meshstack:storage": {
            "buckets": [
                {"name": "data", "size_gib": math.ceil(request.tokens * 2 / 2**30) if request.tokens else 100},
                {"name": "checkpoints", "size_gib": math.ceil(state_gib * 3)},
            ]
        },
        "meshstack:budget": {"max_accelerators": accelerators},
        "meshstack:workloads": [workload],
    }


def stack_config(name: str, request: PlanRequest, option: Option, access: Access) -> tuple[dict[str, Any], StackSpec]:
    """The first stack for `option` that meshstack's spec accepts, with the spec it validates to."""
    if not access.deployer_cidrs and not access.public_access_cidrs:
        raise EmitError(
            "the cluster's API endpoint is private: give --deployer-cidr (the network `pulumi up` runs from) "
            "or --public-access-cidr"
        )
    image = access.image
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
            layout = option.layout
            spent = devices if request.mode == "train" else int(layout["replicas"]) * int(layout["devices_per_replica"])
            config = _config(name, request, option, nodes, workload, access, spent)
            try:
                return config, spec_from_config(name, config)
            except SpecError as exc:
                problems.append(str(exc))
    reason = problems[-1] if problems else "no mesh over its devices divides the model"
    raise EmitError(f"meshstack's own workload cannot run {option.label}: {reason}")


# What the planner's int8 (weight-only, one scale per output channel) is called in vLLM v0.34.0.
VLLM_QUANTIZATION = {"int8": "int8_per_channel_weight_only"}


def mirrored(image: str, upstream: str) -> str:
    """`upstream` in the registry `image` comes from: where a stack whose pack pins registries pulls it."""
    first = image.split("/", 1)[0]
    return f"{first}/{upstream}" if "." in first or ":" in first else upstream


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
    return {
        "kind": "inference",
        "engine": "vllm",
        "image": mirrored(image, vllm.facts().images["gpu"]),
        "weights": {"bucket": "checkpoints", "prefix": f"models/{name}"},
        **scale,
        "vllm": settings,
    }


def write_stack(project: Project, name: str, config: dict[str, Any], header: str) -> Path:
    """Writes stacks/Pulumi.<name>.yaml; never over an existing file."""
    path = project.stack_file(name)
    if path.exists():
        raise EmitError(f"{path} exists: choose another --emit-stack name or remove the file")
    path.write_text(header + yaml.safe_dump({"config": config}, sort_keys=False))
    return path
