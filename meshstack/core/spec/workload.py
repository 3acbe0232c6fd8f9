"""Workloads: the training jobs and inference services a stack runs on its clusters.

A training workload runs meshstack's own JAX trainer, MaxText, or any program of the user's own
(`command`) under one environment contract; an inference workload runs meshstack's server, vLLM or
any server (`engine`)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from meshstack.core.contract import (
    CONTRACT_ENV,
    TORCH_MASTER_PORT,
    TRAIN_METRICS_PORT,
    MeshConfig,
    ServeConfig,
    TrainConfig,
    served_seq_len,
    shape_problem,
)
from meshstack.core.engines.vllm import VLLM_PORT, VllmConfig
from meshstack.core.model_config import ModelConfig
from meshstack.core.programs.maxtext import check_overrides
from meshstack.core.spec.base import DNS_LABEL, SpecModel, check_labels, field_error
from meshstack.core.spec.data import Mount, StorageRef

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HF_MODEL = r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$"
HTTP_PATH = r"^/[A-Za-z0-9/_.~-]*$"
PROGRAM_GRACE_SECONDS = 120  # SIGTERM to SIGKILL for a program meshstack cannot size a save for
CUSTOM_SERVER_PORT = 8080
SERVER_FIELDS = ("command", "args", "port", "health_path", "metrics_path", "in_flight_metric")


def check_env(env: dict[str, str], reserved: frozenset[str]) -> dict[str, str]:
    """Variable names a shell and Kubernetes both accept, none of them the contract's own."""
    for key in env:
        if not ENV_NAME.match(key):
            raise field_error(f"env.{key}", f"'{key}' is not an environment variable name (letters, digits, _)")
        if key in reserved:
            raise field_error(f"env.{key}", f"{key} is part of meshstack's environment contract, set for every pod")
    return env


class _Workload(SpecModel):
    name: str = Field(pattern=DNS_LABEL, description="The workload's name: its Kubernetes objects and identity.")
    cluster: str = Field(description="The cluster it runs on (a clusters[].name).")
    node_pool: str = Field(description="The pool of that cluster its pods run on.")
    image: str | None = Field(
        default=None,
        min_length=1,
        description="Container image (registry/name:tag or @sha256). For meshstack's own trainer and server, an "
        "image built from this repository's Dockerfile; for a program of your own, yours (it needs nothing of "
        "meshstack); for vLLM, its pinned image by default.",
    )
    namespace: str = Field(default="ml", pattern=DNS_LABEL, description="Kubernetes namespace of its objects.")
    model: ModelConfig = Field(
        default_factory=ModelConfig,
        description="The model's shape: what meshstack's programs build, and what sizes the memory check, the "
        "startup probe and the cost and energy figures for any program.",
    )
    mounts: list[Mount] = Field(default_factory=list, description="The stack's file systems mounted into each pod.")
    command: list[str] | None = Field(
        default=None,
        description="A program of your own: the container's command (exec form, as Kubernetes takes it).",
    )
    args: list[str] = Field(default_factory=list, description="Arguments after `command`.")
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment variables; the contract's own may not be overridden."
    )

    @field_validator("command")
    @classmethod
    def _command(cls, command: list[str] | None) -> list[str] | None:
        if command is not None and (not command or any(not part.strip() for part in command)):
            raise field_error("", "must be a non-empty list of non-empty strings, as a container's command")
        return command

    @property
    def model_given(self) -> bool:
        """Whether the stack gave the model's shape (for a program meshstack does not build: sizing only)."""
        return "model" in self.model_fields_set

    def _refuse(self, fields: tuple[str, ...], why: str) -> None:
        for name in fields:
            if name in self.model_fields_set:
                raise field_error(name, why)


class TrainingWorkload(_Workload):
    kind: Literal["training"] = Field(description="training: a job of processes that runs to its end.")
    program: Literal["meshstack", "maxtext"] = Field(
        default="meshstack",
        description="meshstack: meshstack's own JAX trainer; maxtext: MaxText's train command rendered from the "
        "spec (`maxtext` holds further base.yml keys). Give `command` instead to run a program of your own.",
    )
    maxtext: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="program maxtext: MaxText config keys (keys of its base.yml) beyond those rendered from the spec.",
    )
    processes: int = Field(ge=1, description="Processes: one pod each, one per node for multi-GPU hosts.")
    devices_per_process: int | None = Field(
        default=None, ge=1, description="Accelerators per process; the pool's accelerators per node by default."
    )
    mesh: MeshConfig = Field(
        default_factory=MeshConfig, description="The device mesh of meshstack's trainer or of MaxText."
    )
    train: TrainConfig = Field(
        default_factory=TrainConfig, description="Steps, batch and optimizer of meshstack's trainer or of MaxText."
    )
    data: StorageRef | None = Field(
        default=None, description="Training data (MESHSTACK_DATA_URI); meshstack's trainer and MaxText need it."
    )
    checkpoints: StorageRef | None = Field(
        default=None,
        description="Where checkpoints go (MESHSTACK_CHECKPOINT_URI); meshstack's trainer and MaxText need it.",
    )
    init_from: StorageRef | str | None = Field(
        default=None,
        description="meshstack's trainer: a Hugging Face model folder (config.json, *.safetensors, tokenizer.json) "
        "to fine-tune, as a bucket and prefix of the stack's storage or a folder path; `model` must describe it.",
    )
    deadline_seconds: int = Field(default=86400, ge=60, description="activeDeadlineSeconds of each job.")
    ttl_seconds_after_finished: int = Field(
        default=3600, ge=0, description="How long a finished job object stays before Kubernetes deletes it."
    )
    max_restarts: int = Field(default=3, ge=0, description="Whole-job restarts after a pod fails.")
    use_jobset: bool = Field(default=True, description="JobSet (installed by the cluster), else an Indexed Job.")
    coordinator_port: int = Field(
        default=1234, ge=1024, le=65535, description="Port of process 0's JAX coordinator (JAX_COORDINATOR_ADDRESS)."
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1024,
        le=65535,
        description=f"Port each pod serves Prometheus metrics on, scraped by the cluster: {TRAIN_METRICS_PORT} for "
        "meshstack's trainer; for other programs, no scrape unless given.",
    )
    grace_seconds: int | None = Field(
        default=None,
        ge=1,
        le=3600,
        description="SIGTERM to SIGKILL (MESHSTACK_GRACE_SECONDS): sized from a step and a save for meshstack's "
        f"trainer, {PROGRAM_GRACE_SECONDS} s for other programs, unless given.",
    )
    queue: str | None = Field(
        default=None, description="The cluster's Kueue queue; may be left out when the cluster has one queue."
    )
    priority: str | None = Field(default=None, description="One of the cluster's priorities.")

    @property
    def custom(self) -> bool:
        """A program of the user's own: its `command` runs as it is."""
        return self.command is not None

    @property
    def scrape_port(self) -> int | None:
        """Where the pods' metrics are scraped, if anywhere."""
        if self.metrics_port is not None:
            return self.metrics_port
        return TRAIN_METRICS_PORT if not self.custom and self.program == "meshstack" else None

    @model_validator(mode="after")
    def _shape(self) -> TrainingWorkload:
        check_env(self.env, CONTRACT_ENV)
        if self.image is None:
            raise field_error("image", "a training job needs the image its program runs in")
        if self.custom:
            if "program" in self.model_fields_set:
                raise field_error("command", f"command runs a program of your own: drop program: {self.program}")
            self._refuse(
                ("train", "mesh", "maxtext"),
                "meshstack's trainer settings do not apply to a program of your own (command): pass yours in "
                "args or env (model may stay, for the memory check and the cost figures)",
            )
        else:
            self._refuse(("args",), "args go with command (a program of your own)")
            for ref in ("data", "checkpoints"):
                if getattr(self, ref) is None:
                    raise field_error(ref, f"program {self.program} needs {ref} (a bucket and a prefix)")
            problem = shape_problem(self.model, self.mesh, self.train)
            if problem is not None:
                raise field_error(*problem)
        if self.init_from is not None and (self.custom or self.program != "meshstack"):
            raise field_error("init_from", "meshstack's trainer only: another program loads its own weights")
        if isinstance(self.init_from, str) and not self.init_from.strip():
            raise field_error("init_from", "a folder path, or a bucket and a prefix")
        if self.program == "maxtext":
            check_overrides(self.maxtext)
        else:
            self._refuse(("maxtext",), "MaxText config keys go with program: maxtext")
        if self.coordinator_port == TORCH_MASTER_PORT:
            raise field_error("coordinator_port", f"{TORCH_MASTER_PORT} is the torch rendezvous port (MASTER_PORT)")
        taken = {self.coordinator_port: "coordinator_port", TORCH_MASTER_PORT: "the torch rendezvous port"}
        if self.scrape_port in taken:
            raise field_error("metrics_port", f"{self.scrape_port} is also {taken[self.scrape_port]}")
        return self


class Clients(SpecModel):
    """Who may reach an inference service (its NetworkPolicy): pods of its own namespace, and of these
    namespaces; `pod_labels` narrows both to pods carrying them."""

    namespaces: list[str] = Field(default_factory=list, description="Other namespaces whose pods may call the service.")
    pod_labels: dict[str, str] = Field(
        default_factory=dict, description="Labels a calling pod must carry, in its own namespace and those."
    )

    @field_validator("namespaces")
    @classmethod
    def _names(cls, namespaces: list[str]) -> list[str]:
        for name in namespaces:
            if not re.match(DNS_LABEL, name):
                raise field_error(name, f"'{name}' is not a namespace name (a DNS label)")
        return namespaces

    @field_validator("pod_labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        return check_labels(labels)


class InferenceWorkload(_Workload):
    kind: Literal["inference"] = Field(description="inference: a service of replicas that KEDA scales.")
    engine: Literal["meshstack", "vllm", "custom"] = Field(
        default="meshstack",
        description="meshstack: meshstack's server on its checkpoints; vllm: vLLM's OpenAI server on `weights` or "
        "`hf_model`; custom: your own server (`image`, `command`, `port`, `health_path`, `metrics_path`).",
    )
    checkpoints: StorageRef | None = Field(
        default=None, description="meshstack engine: the checkpoints to serve; or from_training."
    )
    from_training: str | None = Field(
        default=None, description="meshstack engine: serve the checkpoints of this training workload."
    )
    weights: StorageRef | None = Field(
        default=None,
        description="vllm or meshstack engine: a Hugging Face model folder (config.json, *.safetensors, tokenizer "
        "files) in the stack's storage, streamed from the bucket (meshstack's server: `model` describes it).",
    )
    hf_model: str | None = Field(
        default=None, pattern=HF_MODEL, description="vllm engine: a Hugging Face Hub model (org/name) instead."
    )
    hf_token_secret: str | None = Field(
        default=None,
        pattern=DNS_LABEL,
        description="vllm engine: a Secret (key 'token') with the Hugging Face token for a gated hf_model.",
    )
    weights_gib: float | None = Field(
        default=None,
        gt=0,
        description="Size of the weights a vllm or custom server loads, for its startup probe and the memory "
        "check; from `model` when that is given.",
    )
    vllm: VllmConfig = Field(default_factory=VllmConfig, description="vllm engine: vLLM's own settings.")
    port: int | None = Field(
        default=None,
        ge=1024,
        le=65535,
        description=f"vllm or custom engine: the server's port ({VLLM_PORT} for vLLM, {CUSTOM_SERVER_PORT} for "
        "custom by default).",
    )
    health_path: str | None = Field(
        default=None, pattern=HTTP_PATH, description="custom engine: answers 200 once the server can serve."
    )
    metrics_path: str | None = Field(
        default=None, pattern=HTTP_PATH, description="custom engine: its Prometheus metrics, scraped by the cluster."
    )
    in_flight_metric: str | None = Field(
        default=None,
        pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$",
        description="custom engine: the gauge of requests in flight that KEDA scales on (read from metrics_path).",
    )
    devices_per_replica: int | None = Field(
        default=None, ge=0, description="1 on accelerator pools, 0 on CPU; vLLM's tensor-parallel size."
    )
    min_replicas: int = Field(default=1, ge=1, description="Replicas kept however idle.")
    max_replicas: int = Field(default=2, ge=1, description="Replicas KEDA may scale up to.")
    target_in_flight: int | None = Field(
        default=None,
        ge=1,
        description="Requests in flight per replica that KEDA scales towards; serve.max_batch_size (vllm: "
        "vllm.max_num_seqs) by default.",
    )
    serve: ServeConfig = Field(default_factory=ServeConfig, description="meshstack engine: the server's settings.")
    clients: Clients = Field(default_factory=Clients, description="Who may reach the service.")
    token_secret: str | None = Field(
        default=None,
        pattern=DNS_LABEL,
        description="A Kubernetes Secret (key 'token') whose value callers must send as a bearer token.",
    )

    @property
    def server_port(self) -> int:
        if self.engine == "meshstack":
            return self.serve.port
        if self.port is not None:
            return self.port
        return VLLM_PORT if self.engine == "vllm" else CUSTOM_SERVER_PORT

    @model_validator(mode="after")
    def _check(self) -> InferenceWorkload:
        check_env(self.env, CONTRACT_ENV)
        {"meshstack": self._check_meshstack, "vllm": self._check_vllm, "custom": self._check_custom}[self.engine]()
        if self.min_replicas > self.max_replicas:
            raise field_error(
                "min_replicas", f"min_replicas {self.min_replicas} exceeds max_replicas {self.max_replicas}"
            )
        return self

    def _check_meshstack(self) -> None:
        self._refuse(
            (*SERVER_FIELDS, "hf_model", "hf_token_secret", "weights_gib", "vllm"),
            "does not apply to meshstack's own server: set engine to vllm or custom",
        )
        if self.image is None:
            raise field_error("image", "meshstack's server needs an image built from meshstack's Dockerfile")
        if sum(x is not None for x in (self.checkpoints, self.from_training, self.weights)) != 1:
            raise field_error(
                "checkpoints",
                "give exactly one of checkpoints or from_training (meshstack's), or weights (a Hugging Face folder)",
            )
        context = served_seq_len(self.model, self.serve)
        if self.serve.max_seq_len is not None and context > self.model.max_position_embeddings:
            raise field_error(
                "serve.max_seq_len", f"exceeds model.max_position_embeddings {self.model.max_position_embeddings}"
            )
        if self.serve.max_new_tokens >= context:
            raise field_error("serve.max_new_tokens", f"must be below the context served ({context} tokens)")

    def _check_vllm(self) -> None:
        self._refuse(
            ("checkpoints", "from_training", "serve"), "applies to meshstack's own server only (engine: meshstack)"
        )
        self._refuse(("command", "args", "health_path", "metrics_path", "in_flight_metric"), "engine custom only")
        if (self.weights is None) == (self.hf_model is None):
            raise field_error("weights", "engine vllm serves weights (a bucket and a prefix) or an hf_model: give one")
        if self.hf_token_secret is not None and self.hf_model is None:
            raise field_error("hf_token_secret", "goes with hf_model (a token for the Hugging Face Hub)")
        if not self.model_given and self.weights_gib is None:
            raise field_error("weights_gib", "give weights_gib or the model's shape: they size the startup probe")
        limit = self.vllm.max_model_len
        if limit is not None and self.model_given and limit > self.model.max_position_embeddings:
            raise field_error(
                "vllm.max_model_len", f"exceeds model.max_position_embeddings {self.model.max_position_embeddings}"
            )

    def _check_custom(self) -> None:
        self._refuse(
            ("checkpoints", "from_training", "serve"), "applies to meshstack's own server only (engine: meshstack)"
        )
        self._refuse(("weights", "hf_model", "hf_token_secret", "vllm"), "engine vllm only")
        for name in ("image", "command", "health_path"):
            if getattr(self, name) is None:
                raise field_error(name, f"engine custom needs {name}")
        if self.in_flight_metric is not None and self.metrics_path is None:
            raise field_error("in_flight_metric", "KEDA reads it from the scraped metrics: give metrics_path")
        if self.in_flight_metric is None and self.max_replicas > self.min_replicas:
            raise field_error(
                "in_flight_metric",
                "autoscaling needs the server's gauge of requests in flight (and metrics_path); "
                "or set max_replicas to min_replicas",
            )


Workload = Annotated[TrainingWorkload | InferenceWorkload, Field(discriminator="kind")]
