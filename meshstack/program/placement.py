"""Puts a stack's workloads onto its clusters: identities, URIs, job configs and the Kubernetes components."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import pulumi

from components.platform import Platform, StorageTargets
from meshstack.core import sizing
from meshstack.core.capacity import devices_per_pod, queue_of
from meshstack.core.contract import TRAIN_METRICS_PORT, JobConfig, ServeJobConfig
from meshstack.core.nodes import NodePoolArgs
from meshstack.core.spec import InferenceWorkload, StackSpec, StorageRef, TrainingWorkload
from workloads.k8s.inference_service import InferenceService, InferenceServiceArgs
from workloads.k8s.pod import Placement
from workloads.k8s.training_job import TrainingJob, TrainingJobArgs
from workloads.k8s.volumes import VolumeMount

Workload = TrainingWorkload | InferenceWorkload


def placement(spec: StackSpec, workload: Workload, pool: NodePoolArgs) -> Placement:
    return Placement.for_devices(pool, devices_per_pod(workload, spec.pool_of(workload)))


def _uri(storage: StorageTargets, ref: StorageRef) -> pulumi.Output[str]:
    return storage.uri(ref.bucket, ref.prefix)


def _training_config(workload: TrainingWorkload, peak: float | None, uris: list[str]) -> str:
    """What the training pods read from MESHSTACK_JOB_CONFIG, once the buckets' names are known."""
    return JobConfig(
        name=workload.name,
        model=workload.model,
        mesh=workload.mesh,
        train=workload.train,
        data_uri=uris[0],
        checkpoint_uri=uris[1],
        peak_tflops_per_device=peak,
        metrics_port=TRAIN_METRICS_PORT,
    ).model_dump_json()


def grace_seconds(workload: TrainingWorkload, devices: int, peak: float | None) -> int:
    """The pods' termination grace: the step in progress and the save, at the planning MFU."""
    train = workload.train
    step_tokens = train.global_batch * train.seq_len
    model = sizing.of_model(workload.model)
    return sizing.preemption_grace_seconds(
        model, step_tokens, devices, workload.processes, peak or 0, sizing.PLANNING_MFU
    )


def _serving_config(workload: InferenceWorkload, checkpoint_uri: str) -> str:
    return ServeJobConfig(
        name=workload.name, model=workload.model, serve=workload.serve, checkpoint_uri=checkpoint_uri
    ).model_dump_json()


def deploy_workloads(spec: StackSpec, pools: Mapping[tuple[str, str], NodePoolArgs], platform: Platform) -> None:
    """Each workload gets an identity allowed on exactly the buckets it names, then its Kubernetes component."""
    storage = platform.storage
    for workload in spec.workloads:
        cluster = platform.clusters[workload.cluster]
        where = placement(spec, workload, pools[(workload.cluster, workload.node_pool)])
        name = f"{spec.name}-{workload.name}"
        if isinstance(workload, TrainingWorkload):
            refs = [workload.data, workload.checkpoints]
            peak = where.pool.accelerator.bf16_tflops or None
            config = pulumi.Output.all(_uri(storage, workload.data), _uri(storage, workload.checkpoints)).apply(
                functools.partial(_training_config, workload, peak)
            )
        else:
            refs = [spec.checkpoints_of(workload)]
            config = _uri(storage, refs[0]).apply(functools.partial(_serving_config, workload))
        annotations = cluster.grant(
            workload.name,
            workload.namespace,
            workload.name,
            sorted({r.bucket for r in refs}),
            isinstance(workload, InferenceWorkload),
        )
        opts = pulumi.ResourceOptions(provider=cluster.provider, depends_on=[cluster.addons])
        # The WorkloadArgs fields both components share.
        shared: dict[str, Any] = {
            "name": workload.name,
            "namespace": workload.namespace,
            "image": workload.image,
            "placement": where,
            "job_config": config,
            "account_annotations": annotations,
            "volumes": [VolumeMount(m.source[1], m.path, storage.filesystems[m.source]) for m in workload.mounts],
        }
        if isinstance(workload, TrainingWorkload):
            TrainingJob(
                name,
                TrainingJobArgs(
                    **shared,
                    processes=workload.processes,
                    use_jobset=workload.use_jobset,
                    max_restarts=workload.max_restarts,
                    deadline_seconds=workload.deadline_seconds,
                    ttl_seconds_after_finished=workload.ttl_seconds_after_finished,
                    coordinator_port=workload.coordinator_port,
                    queue=queue.name if (queue := queue_of(spec.cluster_of(workload), workload)) else None,
                    priority=workload.priority,
                    grace_seconds=grace_seconds(workload, where.devices * workload.processes, peak),
                    metrics=cluster.metrics,
                ),
                opts,
            )
        else:
            InferenceService(
                name,
                InferenceServiceArgs(
                    **shared,
                    port=workload.serve.port,
                    min_replicas=workload.min_replicas,
                    max_replicas=workload.max_replicas,
                    target_in_flight=workload.target_in_flight or workload.serve.max_batch_size,
                    metrics=cluster.metrics,
                    client_namespaces=workload.clients.namespaces,
                    client_labels=workload.clients.pod_labels,
                    token_secret=workload.token_secret,
                    drain_seconds=workload.serve.drain_timeout_s,
                ),
                opts,
            )
