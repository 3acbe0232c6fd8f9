"""The JAX environment contract: what a training or serving program is told, by variable and by JSON.

Kubernetes manifests and the local runner write it; the programs under workloads/jax read it.

These models are part of the stack spec (a workload's `model`, `train`, `mesh`)
and are also what a running program reads from MESHSTACK_JOB_CONFIG, so the
spec a user validates is exactly what the pods receive. No JAX import here:
validation must not need an accelerator runtime.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from meshstack.core.validation import SpecModel, field_error

JOB_CONFIG_ENV = "MESHSTACK_JOB_CONFIG"
# What a pod of meshstack's own trainer and server runs (the image of this repository's Dockerfile).
TRAINER_COMMAND = ("python", "-m", "workloads.jax.train")
SERVER_COMMAND = ("python", "-m", "workloads.jax.serve")
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


class ModelConfig(SpecModel):
    vocab_size: int = Field(default=260, ge=260, description="Byte tokenizer: 256 bytes and 4 special tokens.")
    d_model: int = Field(default=64, ge=8)
    n_layers: int = Field(default=2, ge=1)
    n_heads: int = Field(default=4, ge=1)
    d_ff: int = Field(default=256, ge=8)
    max_seq_len: int = Field(default=128, ge=8)

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.d_model % self.n_heads:
            raise field_error("n_heads", f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if (self.d_model // self.n_heads) % 2:
            raise field_error("n_heads", "the head dimension (d_model / n_heads) must be even for rotary embeddings")
        return self

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def param_count(self, embeddings: bool = True) -> int:
        per_layer = 4 * self.d_model * self.d_model + 3 * self.d_model * self.d_ff + 2 * self.d_model
        total = self.n_layers * per_layer + self.d_model
        return total + (self.vocab_size * self.d_model if embeddings else 0)

    def train_flops_per_token(self, seq_len: int) -> float:
        """Forward and backward FLOPs per token: 6N for the weights plus the attention scores (PaLM, app. B)."""
        return 6 * self.param_count() + 12 * self.n_layers * self.d_model * seq_len


class MeshConfig(SpecModel):
    """The device mesh: data parallel, fully sharded data parallel, tensor parallel."""

    data: int = Field(default=1, ge=1)
    fsdp: int = Field(default=1, ge=1)
    tensor: int = Field(default=1, ge=1)

    @property
    def size(self) -> int:
        return self.data * self.fsdp * self.tensor


class TrainConfig(SpecModel):
    steps: int = Field(default=200, ge=1)
    global_batch: int = Field(default=8, ge=1, description="Sequences per optimizer step, over all processes.")
    seq_len: int = Field(default=64, ge=8)
    micro_batches: int = Field(default=1, ge=1, description="Gradient accumulation: the batch is split this often.")
    skip_nonfinite_steps: int = Field(
        default=0, ge=0, description="Steps in a row with a non-finite loss skipped (no update) before the job stops."
    )
    learning_rate: float = Field(default=3e-3, gt=0)
    warmup_steps: int = Field(default=10, ge=0)
    weight_decay: float = Field(default=0.01, ge=0)
    seed: int = 0
    compute_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto", description="auto: bfloat16 on GPU and TPU, float32 on CPU."
    )
    checkpoint_every: int = Field(default=50, ge=1)
    keep_checkpoints: int = Field(default=3, ge=1)
    log_every: int = Field(default=1, ge=1)
    stall_timeout_s: float = Field(
        default=900,
        ge=1,
        description="No step for this long (after the first, which compiles) ends the job with exit 4 so the "
        "group restarts, instead of hanging on a lost host until deadline_seconds.",
    )


class ServeConfig(SpecModel):
    port: int = Field(default=8080, ge=1, le=65535)
    max_batch_size: int = Field(
        default=8,
        ge=1,
        description="Requests decoded together at most: the KV cache's rows (fewer where kv_cache_gib holds fewer).",
    )
    max_queue: int = Field(
        default=64, ge=1, description="Requests waiting for a row beyond this are refused with 429 and Retry-After."
    )
    max_new_tokens: int = Field(default=64, ge=1, description="The largest max_tokens a request may ask for.")
    max_prompt_bytes: int = Field(default=4096, ge=1)
    kv_cache_gib: float | None = Field(
        default=None,
        gt=0,
        description="Memory for the KV cache: as many rows of max_seq_len positions as fit, at most max_batch_size.",
    )
    quantization: Literal["none", "int8"] = Field(
        default="none", description="int8: weight-only, one scale per output channel (a quarter of fp32's memory)."
    )
    compute_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto", description="auto: bfloat16 on GPU and TPU, float32 on CPU."
    )
    prefill_chunk: int = Field(
        default=256, ge=16, description="Prompt tokens prefilled per step, between the running requests' decodes."
    )
    prefix_cache: bool = Field(default=True, description="Reuse the KV of a prompt prefix another request computed.")
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
    if train.seq_len > model.max_seq_len:
        return ("train.seq_len", f"exceeds model.max_seq_len {model.max_seq_len}")
    for dim, name in ((model.d_model, "d_model"), (model.d_ff, "d_ff")):
        if dim % mesh.fsdp:
            return ("mesh.fsdp", f"model.{name} {dim} is not divisible by mesh.fsdp {mesh.fsdp}")
    for dim, name in ((model.n_heads, "n_heads"), (model.d_ff, "d_ff")):
        if dim % mesh.tensor:
            return ("mesh.tensor", f"model.{name} {dim} is not divisible by mesh.tensor {mesh.tensor}")
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
