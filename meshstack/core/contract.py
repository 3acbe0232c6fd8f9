"""The JAX environment contract: what a training or serving program is told, by variable and by JSON.

Kubernetes manifests and the local runner write it; the programs under workloads/jax read it.

These models are part of the stack spec (a workload's `train`, `mesh`, `serve`; its `model` is
meshstack.core.model_config's) and are also what a running program reads from MESHSTACK_JOB_CONFIG, so the
spec a user validates is exactly what the pods receive. No JAX import here:
validation must not need an accelerator runtime.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from meshstack.core.model_config import ModelConfig
from meshstack.core.validation import SpecModel, field_error
from meshstack.core.vocabulary import ComputeDtype

JOB_CONFIG_ENV = "MESHSTACK_JOB_CONFIG"
# What a pod of meshstack's own trainer and server runs (the image of this repository's Dockerfile).
TRAINER_COMMAND = ("python", "-m", "meshstack.workloads.jax.train")
SERVER_COMMAND = ("python", "-m", "meshstack.workloads.jax.serve")
SERVE_TOKEN_ENV = "MESHSTACK_SERVE_TOKEN"  # the bearer token the server checks, when set
# Multi-host start-up, as Kubeflow Trainer names it; TPU slices on GKE set TPU_WORKER_* themselves.
COORDINATOR = "JAX_COORDINATOR_ADDRESS"
NUM_PROCESSES = "JAX_NUM_PROCESSES"
PROCESS_ID = "JAX_PROCESS_ID"
TPU_HOSTS = "TPU_WORKER_HOSTNAMES"
TRAIN_METRICS_PORT = 9404  # where each training pod serves its Prometheus metrics
# JobSet labels each pod with the group's restart count; the trainer reports it as a metric.
RESTART_ATTEMPT_ENV = "MESHSTACK_RESTART_ATTEMPT"
# The pod's terminationGracePeriodSeconds: the trainer warns when a save would not fit in it.
GRACE_SECONDS_ENV = "MESHSTACK_GRACE_SECONDS"
# Where any training program finds its storage: the workload's `checkpoints` and `data` refs as
# s3:// or gs:// URIs on a cluster, file:// on the local target.
CHECKPOINT_URI_ENV = "MESHSTACK_CHECKPOINT_URI"
DATA_URI_ENV = "MESHSTACK_DATA_URI"
# What Kubeflow's PyTorch runtime sets, so a program launched by torchrun runs unchanged: torchrun
# reads its --nnodes, --node-rank, --nproc-per-node, --master-addr and --master-port from PET_*;
# a program run without torchrun reads MASTER_*, WORLD_SIZE and RANK (one process per pod).
TORCH_MASTER_PORT = 29500  # PyTorch's default rendezvous port, on process 0
MASTER_ADDR = "MASTER_ADDR"
MASTER_PORT = "MASTER_PORT"
WORLD_SIZE = "WORLD_SIZE"
RANK = "RANK"
NODE_RANK = "NODE_RANK"  # the pod's index, as PyTorch Lightning and MaxText's GPU start-up read it
PET_NNODES = "PET_NNODES"
PET_NODE_RANK = "PET_NODE_RANK"
PET_NPROC_PER_NODE = "PET_NPROC_PER_NODE"
PET_MASTER_ADDR = "PET_MASTER_ADDR"
PET_MASTER_PORT = "PET_MASTER_PORT"
# Set by GKE's TPU webhook and by JobSet for multislice: a workload's env must not override them either.
TPU_PLATFORM_ENV = (
    "TPU_WORKER_ID",
    TPU_HOSTS,
    "MEGASCALE_COORDINATOR_ADDRESS",
    "MEGASCALE_NUM_SLICES",
    "MEGASCALE_SLICE_ID",
    "MEGASCALE_PORT",
)
# The variables whose value is the pod's (the process's) index.
INDEX_ENV = (PROCESS_ID, RANK, NODE_RANK, PET_NODE_RANK)


def host_contract(host: str, coordinator_port: int, processes: int, devices: int) -> dict[str, str]:
    """What GPU and CPU hosts are told beside their index (INDEX_ENV): JAX's multi-host variables and
    the ones Kubeflow's PyTorch runtime sets. One process per pod, so WORLD_SIZE counts pods;
    torchrun starts PET_NPROC_PER_NODE workers in each and renumbers them itself."""
    count = str(processes)
    return {
        COORDINATOR: f"{host}:{coordinator_port}",
        NUM_PROCESSES: count,
        MASTER_ADDR: host,
        MASTER_PORT: str(TORCH_MASTER_PORT),
        PET_MASTER_ADDR: host,
        PET_MASTER_PORT: str(TORCH_MASTER_PORT),
        WORLD_SIZE: count,
        PET_NNODES: count,
        PET_NPROC_PER_NODE: str(max(devices, 1)),
    }


# Every variable meshstack sets in a training pod: a workload's `env` may add others, never these.
CONTRACT_ENV = frozenset(
    {
        JOB_CONFIG_ENV,
        COORDINATOR,
        NUM_PROCESSES,
        PROCESS_ID,
        RESTART_ATTEMPT_ENV,
        GRACE_SECONDS_ENV,
        CHECKPOINT_URI_ENV,
        DATA_URI_ENV,
        MASTER_ADDR,
        MASTER_PORT,
        WORLD_SIZE,
        RANK,
        NODE_RANK,
        PET_NNODES,
        PET_NODE_RANK,
        PET_NPROC_PER_NODE,
        PET_MASTER_ADDR,
        PET_MASTER_PORT,
        *TPU_PLATFORM_ENV,
    }
)

# How a trainer ends. Preemption's code is SIGTERM's own (128 + 15): a trainer that saved on SIGTERM
# and one killed by it before it could both read as preempted, and neither is the program's fault.
# Not 0: a pod that exits 0 completes its index, and the Job would finish with training undone.
EXIT_CONTRACT = 2  # the job's configuration or environment is wrong: restarting cannot help
EXIT_UNTRUSTED = 3  # the loss diverged, or no checkpoint can be trusted
EXIT_STALLED = 4  # no step finished within train.stall_timeout_s: a hung collective or a lost host
EXIT_PREEMPTED = 143


class MeshConfig(SpecModel):
    """The device mesh: data parallel, fully sharded data parallel, tensor parallel."""

    data: int = Field(default=1, ge=1, description="Replicas of the whole model, each on its own share of the batch.")
    fsdp: int = Field(
        default=1, ge=1, description="Devices the weights, gradients and optimizer state are sharded over (FSDP)."
    )
    tensor: int = Field(
        default=1, ge=1, description="Devices each layer's heads and feed-forward width are split over."
    )

    @property
    def size(self) -> int:
        return self.data * self.fsdp * self.tensor


class TrainConfig(SpecModel):
    steps: int = Field(default=200, ge=1, description="Optimizer steps the run takes.")
    global_batch: int = Field(default=8, ge=1, description="Sequences per optimizer step, over all processes.")
    seq_len: int = Field(default=64, ge=8, description="Tokens per training sequence.")
    micro_batches: int = Field(default=1, ge=1, description="Gradient accumulation: the batch is split this often.")
    skip_nonfinite_steps: int = Field(
        default=0, ge=0, description="Steps in a row with a non-finite loss skipped (no update) before the job stops."
    )
    learning_rate: float = Field(
        default=3e-3, gt=0, description="The peak rate: reached after warmup, then cosine decay to a tenth of it."
    )
    warmup_steps: int = Field(default=10, ge=0, description="Steps of linear warmup from 0 to learning_rate.")
    weight_decay: float = Field(default=0.01, ge=0, description="AdamW's decoupled weight decay.")
    seed: int = Field(default=0, description="Seeds the initial weights and the data order.")
    compute_dtype: ComputeDtype = Field(default="auto", description="auto: bfloat16 on GPU and TPU, float32 on CPU.")
    checkpoint_every: int = Field(default=50, ge=1, description="Steps between checkpoints (and after the last).")
    keep_checkpoints: int = Field(default=3, ge=1, description="Checkpoints kept; older ones are deleted.")
    log_every: int = Field(default=1, ge=1, description="Steps between the trainer's step log lines.")
    stall_timeout_s: float = Field(
        default=900,
        ge=1,
        description="No step for this long (after the first, which compiles) ends the job with exit 4 so the "
        "group restarts, instead of hanging on a lost host until deadline_seconds.",
    )


class ServeConfig(SpecModel):
    port: int = Field(default=8080, ge=1, le=65535, description="The port the server listens on.")
    max_batch_size: int = Field(
        default=8,
        ge=1,
        description="Requests decoded together at most: the KV cache's rows (fewer where kv_cache_gib holds fewer).",
    )
    max_queue: int = Field(
        default=64, ge=1, description="Requests waiting for a row beyond this are refused with 429 and Retry-After."
    )
    max_new_tokens: int = Field(default=64, ge=1, description="The largest max_tokens a request may ask for.")
    max_prompt_bytes: int = Field(
        default=4096, ge=1, description="A longer prompt (in UTF-8 bytes) is refused with 413."
    )
    max_seq_len: int | None = Field(
        default=None,
        ge=8,
        description="Longest prompt plus completion served: the length of a KV cache row. "
        "model.max_position_embeddings if not given (a Llama 3.1 takes 131,072: set this lower to fit).",
    )
    kv_cache_gib: float | None = Field(
        default=None,
        gt=0,
        description="Memory for the KV cache: as many rows of max_seq_len positions as fit, at most max_batch_size "
        "(grouped-query attention's key/value heads only).",
    )
    quantization: Literal["none", "int8"] = Field(
        default="none", description="int8: weight-only, one scale per output channel (a quarter of fp32's memory)."
    )
    compute_dtype: ComputeDtype = Field(default="auto", description="auto: bfloat16 on GPU and TPU, float32 on CPU.")
    prefill_chunk: int = Field(
        default=256, ge=16, description="Prompt tokens prefilled per step, between the running requests' decodes."
    )
    prefix_cache: bool = Field(default=True, description="Reuse the KV of a prompt prefix another request computed.")
    tensor_parallel: int | None = Field(
        default=None,
        ge=1,
        description="Devices of the host the weights and KV cache are split over (by heads and feed-forward width); "
        "all of them where they divide the model if not given, else one.",
    )
    bind: str = Field(
        default="0.0.0.0", description="Address the server listens on; the NetworkPolicy is what limits who reaches it."
    )
    read_timeout_s: float = Field(default=10, gt=0, le=300, description="Longest wait for a request's headers or body.")
    drain_timeout_s: float = Field(
        default=25, gt=0, le=3600, description="On SIGTERM, how long in-flight requests may take to finish."
    )


class JobConfig(SpecModel):
    """Everything one training job's processes need, handed to them as JSON."""

    name: str
    model: ModelConfig = Field(default_factory=ModelConfig)
    mesh: MeshConfig = Field(default_factory=MeshConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    data_uri: str
    checkpoint_uri: str
    init_from_uri: str | None = Field(
        default=None,
        description="A Hugging Face model folder (config.json, *.safetensors) the first step starts from; "
        "a checkpoint of this job, once there is one, is resumed instead.",
    )
    peak_tflops_per_device: float | None = Field(default=None, description="For MFU; from the catalog.")
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Prometheus metrics on this port (plus the process id); None: off."
    )

    @model_validator(mode="after")
    def _check(self) -> JobConfig:
        problem = shape_problem(self.model, self.mesh, self.train)
        if problem is not None:
            raise field_error(*problem)
        return self


def shape_problem(model: ModelConfig, mesh: MeshConfig, train: TrainConfig) -> tuple[str, str] | None:
    """The first way the model, mesh and batch do not fit together, as (field, message)."""
    batch_devices = mesh.data * mesh.fsdp
    if train.global_batch % train.micro_batches:
        return ("train.micro_batches", "must divide train.global_batch")
    per_step = train.global_batch // train.micro_batches
    if per_step % batch_devices:
        return (
            "train.global_batch",
            f"each micro-batch ({per_step} sequences) must split evenly over data x fsdp = {batch_devices}",
        )
    if train.seq_len > model.max_position_embeddings:
        return ("train.seq_len", f"exceeds model.max_position_embeddings {model.max_position_embeddings}")
    for dim, name in ((model.hidden_size, "hidden_size"), (model.intermediate_size, "intermediate_size")):
        if dim % mesh.fsdp:
            return ("mesh.fsdp", f"model.{name} {dim} is not divisible by mesh.fsdp {mesh.fsdp}")
    return tensor_problem(model, mesh.tensor, "mesh.tensor")


def tensor_problem(model: ModelConfig, tensor: int, field: str) -> tuple[str, str] | None:
    """Whether `tensor` devices can split the model's heads, key/value heads and feed-forward width."""
    for dim, name in (
        (model.num_attention_heads, "num_attention_heads"),
        (model.kv_heads, "num_key_value_heads"),
        (model.intermediate_size, "intermediate_size"),
    ):
        if dim % tensor:
            return (field, f"model.{name} {dim} is not divisible by {field} {tensor}")
    return None


class ServeJobConfig(SpecModel):
    """What one inference server needs: the model shape and the checkpoint to load."""

    name: str
    model: ModelConfig = Field(default_factory=ModelConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    checkpoint_uri: str
    wait_for_checkpoint: bool = Field(
        default=False,
        description="Wait, alive and unready, until the checkpoint exists (a training job of the same stack "
        "writes it), instead of exiting: on a cluster the server starts with the job.",
    )
    checkpoint_poll_s: float = Field(default=30, gt=0, description="How often to look for it meanwhile.")


def served_seq_len(model: ModelConfig, serve: ServeConfig) -> int:
    """The server's context: serve.max_seq_len, else all the model takes."""
    return serve.max_seq_len or model.max_position_embeddings
