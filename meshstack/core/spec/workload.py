"""Workloads: the JAX training jobs and inference services a stack runs on its clusters."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from meshstack.core.contract import MeshConfig, ModelConfig, ServeConfig, TrainConfig, shape_problem
from meshstack.core.spec.base import DNS_LABEL, SpecModel, check_labels, field_error


class StorageRef(SpecModel):
    """A prefix in one of the stack's buckets; the workload's role may read and write only there."""

    bucket: str
    prefix: str = Field(default="", pattern=r"^[A-Za-z0-9/_.-]*$")


class Mount(SpecModel):
    """A file system of the stack, mounted into every pod at `path`."""

    lustre: str | None = None
    efs: str | None = None
    filestore: str | None = None
    path: str = Field(pattern=r"^/[A-Za-z0-9/_.-]*$")

    @model_validator(mode="after")
    def _one(self) -> Mount:
        if sum(x is not None for x in (self.lustre, self.efs, self.filestore)) != 1:
            raise field_error("lustre", "name exactly one of lustre, efs or filestore")
        return self

    @property
    def source(self) -> tuple[str, str]:
        """(kind, name) of the file system: ('lustre', 'scratch')."""
        for kind in ("lustre", "efs", "filestore"):
            if getattr(self, kind) is not None:
                return kind, str(getattr(self, kind))
        raise AssertionError("validated to name one file system")


class _Workload(SpecModel):
    name: str = Field(pattern=DNS_LABEL)
    cluster: str
    node_pool: str
    image: str = Field(min_length=1, description="Container image holding meshstack (registry/name:tag or @sha256).")
    namespace: str = Field(default="ml", pattern=DNS_LABEL)
    model: ModelConfig = Field(default_factory=ModelConfig)
    mounts: list[Mount] = Field(default_factory=list)


class TrainingWorkload(_Workload):
    kind: Literal["training"]
    processes: int = Field(ge=1, description="JAX processes: one pod each, one per node for multi-GPU hosts.")
    devices_per_process: int | None = Field(
        default=None, ge=1, description="Accelerators per process; the pool's accelerators per node by default."
    )
    mesh: MeshConfig = Field(default_factory=MeshConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    data: StorageRef
    checkpoints: StorageRef
    deadline_seconds: int = Field(default=86400, ge=60, description="activeDeadlineSeconds of each job.")
    ttl_seconds_after_finished: int = Field(default=3600, ge=0)
    max_restarts: int = Field(default=3, ge=0, description="Whole-job restarts after a pod fails.")
    use_jobset: bool = Field(default=True, description="JobSet (installed by the cluster), else an Indexed Job.")
    coordinator_port: int = Field(default=1234, ge=1024, le=65535)
    queue: str | None = Field(
        default=None, description="The cluster's Kueue queue; may be left out when the cluster has one queue."
    )
    priority: str | None = Field(default=None, description="One of the cluster's priorities.")

    @model_validator(mode="after")
    def _shape(self) -> TrainingWorkload:
        problem = shape_problem(self.model, self.mesh, self.train)
        if problem is not None:
            raise field_error(*problem)
        return self


class Clients(SpecModel):
    """Who may reach an inference service (its NetworkPolicy): pods of its own namespace, and of these
    namespaces; `pod_labels` narrows both to pods carrying them."""

    namespaces: list[str] = Field(default_factory=list)
    pod_labels: dict[str, str] = Field(default_factory=dict)

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
    kind: Literal["inference"]
    checkpoints: StorageRef | None = Field(default=None, description="Where to load from; or from_training.")
    from_training: str | None = Field(default=None, description="Serve the checkpoints of this training workload.")
    devices_per_replica: int | None = Field(default=None, ge=0, description="1 on accelerator pools, 0 on CPU.")
    min_replicas: int = Field(default=1, ge=1)
    max_replicas: int = Field(default=2, ge=1)
    target_in_flight: int | None = Field(
        default=None,
        ge=1,
        description="Requests in flight per replica that KEDA scales towards; serve.max_batch_size by default.",
    )
    serve: ServeConfig = Field(default_factory=ServeConfig)
    clients: Clients = Field(default_factory=Clients)
    token_secret: str | None = Field(
        default=None,
        pattern=DNS_LABEL,
        description="A Kubernetes Secret (key 'token') whose value callers must send as a bearer token.",
    )

    @model_validator(mode="after")
    def _check(self) -> InferenceWorkload:
        if (self.checkpoints is None) == (self.from_training is None):
            raise field_error("checkpoints", "give exactly one of checkpoints or from_training")
        if self.min_replicas > self.max_replicas:
            raise field_error(
                "min_replicas", f"min_replicas {self.min_replicas} exceeds max_replicas {self.max_replicas}"
            )
        if self.serve.max_new_tokens >= self.model.max_seq_len:
            raise field_error("serve.max_new_tokens", f"must be below model.max_seq_len {self.model.max_seq_len}")
        return self


Workload = Annotated[TrainingWorkload | InferenceWorkload, Field(discriminator="kind")]
