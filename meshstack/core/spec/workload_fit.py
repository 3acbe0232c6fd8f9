"""Whether each workload fits the stack it is declared in: placed on a pool that can run it, a program
the pool's accelerator takes, storage the stack declares, and capacity and memory enough to start."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from meshstack.core import (
    capacity,  # the module, not its names: capacity reads the spec's own classes
    sizing,
)
from meshstack.core.catalog import Catalog
from meshstack.core.contract import served_seq_len
from meshstack.core.engines import vllm
from meshstack.core.programs import maxtext
from meshstack.core.spec.base import field_error
from meshstack.core.spec.data import StorageRef
from meshstack.core.spec.pool import NodePool
from meshstack.core.spec.workload import InferenceWorkload, TrainingWorkload
from meshstack.core.vendors import VENDORS

if TYPE_CHECKING:
    from meshstack.core.capacity import Demand
    from meshstack.core.spec.stack import StackSpec

SERVER_WEIGHTS_SHARE = 0.8  # of the memory a server takes, at most this for weights: the rest is KV cache


def check_capacity(spec: StackSpec, at: str, workload: TrainingWorkload | InferenceWorkload, need: Demand) -> None:
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
    cluster = spec.cluster_of(workload)
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


def check_memory(
    spec: StackSpec, at: str, workload: TrainingWorkload | InferenceWorkload, need: Demand, catalog: Catalog
) -> None:
    """The model must fit the memory of the accelerators its pods get (meshstack.core.sizing)."""
    accelerator = catalog.accelerators[need.pool.accelerator]
    if not need.devices_per_pod or not accelerator.memory_gib:
        return
    if isinstance(workload, InferenceWorkload) and workload.engine != "meshstack":
        check_server_memory(at, workload, need, accelerator.memory_gib)
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


def check_server_memory(at: str, workload: InferenceWorkload, need: Demand, memory_gib: float) -> None:
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


def check_program(spec: StackSpec, at: str, workload: TrainingWorkload | InferenceWorkload, catalog: Catalog) -> None:
    """What MaxText and vLLM need of the pool they run on."""
    pool = spec.pool_of(workload)
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
            within, across = max(spec.devices_per_process(workload) if per_node else 1, 1), workload.processes
        try:
            maxtext.split_mesh(workload.mesh, within, across)
        except ValueError as exc:
            raise field_error(f"{at}.mesh", str(exc)) from None
        return
    if workload.engine != "vllm":
        return
    image = VENDORS[vendor].vllm_image
    if image is None:
        raise field_error(f"{at}.node_pool", f"vLLM's images serve on NVIDIA GPUs and TPUs, not on {pool.accelerator}")
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


def check_accelerator_budget(spec: StackSpec, demands: list[Demand]) -> None:
    """Every workload at full size at once must fit the budget's accelerator cap."""
    cap = spec.budget.max_accelerators
    total = sum(d.accelerators for d in demands)
    if cap is None or total <= cap:
        return
    parts = ", ".join(f"{d.workload} {d.describe()}" for d in demands if d.accelerators)
    raise field_error(
        "budget.max_accelerators",
        f"the workloads need {total} accelerators at once ({parts}); the budget allows {cap}",
    )


def check_placement(spec: StackSpec, at: str, workload: TrainingWorkload | InferenceWorkload) -> None:
    clusters = {c.name: c for c in spec.clusters}
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
    devices = spec.devices_per_process(workload)
    if pool.topology is not None:
        check_tpu_job(at, workload, pool)
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


def check_tpu_job(at: str, workload: TrainingWorkload, pool: NodePool) -> None:
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


def check_storage(spec: StackSpec, at: str, workload: TrainingWorkload | InferenceWorkload) -> None:
    buckets = [b.name for b in spec.storage.buckets]
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
        training = [w.name for w in spec.workloads if isinstance(w, TrainingWorkload)]
        ours = [
            w.name
            for w in spec.workloads
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
        declared = [fs.name for fs in getattr(spec.storage, kind)]
        if name not in declared:
            raise field_error(
                f"{at}.mounts[{j}].{kind}", f"no {kind} file system '{name}': {', '.join(declared) or 'none'}"
            )
