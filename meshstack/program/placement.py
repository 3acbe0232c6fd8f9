"""Puts a stack's workloads onto its clusters: identities, URIs, job configs and the Kubernetes components."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi

from components.platform import Platform, StorageTargets
from meshstack.core.contract import JobConfig, ServeJobConfig
from meshstack.core.nodes import NodePoolArgs
from meshstack.core.spec import InferenceWorkload, StackSpec, StorageRef, TrainingWorkload
from workloads.k8s.inference_service import InferenceService, InferenceServiceArgs
from workloads.k8s.pod import Placement
from workloads.k8s.training_job import TrainingJob, TrainingJobArgs
from workloads.k8s.volumes import VolumeMount

Workload = TrainingWorkload | InferenceWorkload


def placement(spec: StackSpec, workload: Workload, pool: NodePoolArgs) -> Placement:
    """How many devices each pod takes: a TPU host's every chip, a training process's share, a replica's."""
    per_node = pool.accelerators_per_node
    if pool.tpu is not None:
        devices = per_node
    elif isinstance(workload, TrainingWorkload):
        devices = spec.devices_per_process(workload) if per_node else 0
    else:
        devices = workload.devices_per_replica if workload.devices_per_replica is not None else min(per_node, 1)
    return Placement.for_devices(pool, devices)


def _uri(storage: StorageTargets, ref: StorageRef) -> pulumi.Output[str]:
    return storage.uri(ref.bucket, ref.prefix)


def deploy_workloads(spec: StackSpec, pools: Mapping[tuple[str, str], NodePoolArgs], platform: Platform) -> None:
    """Each workload gets an identity allowed on exactly the buckets it names, then its Kubernetes component."""
    storage = platform.storage
    for workload in spec.workloads:
        cluster = platform.clusters[workload.cluster]
        where = placement(spec, workload, pools[(workload.cluster, workload.node_pool)])
        name = f"{spec.name}-{workload.name}"
        refs = [workload.data, workload.checkpoints] if isinstance(workload, TrainingWorkload) else []
        if isinstance(workload, InferenceWorkload):
            refs = [spec.checkpoints_of(workload)]
        annotations = cluster.grant(
            workload.name,
            workload.namespace,
            workload.name,
            sorted({r.bucket for r in refs}),
            isinstance(workload, InferenceWorkload),
        )
        volumes = [VolumeMount(m.source[1], m.path, storage.filesystems[m.source]) for m in workload.mounts]
        opts = pulumi.ResourceOptions(provider=cluster.provider, depends_on=[cluster.addons])
        if isinstance(workload, TrainingWorkload):
            peak = where.pool.accelerator.bf16_tflops or None
            config = pulumi.Output.all(_uri(storage, workload.data), _uri(storage, workload.checkpoints)).apply(
                lambda u, w=workload, peak=peak: JobConfig(
                    name=w.name,
                    model=w.model,
                    mesh=w.mesh,
                    train=w.train,
                    data_uri=u[0],
                    checkpoint_uri=u[1],
                    peak_tflops_per_device=peak,
                ).model_dump_json()
            )
            TrainingJob(
                name,
                TrainingJobArgs(
                    name=workload.name,
                    namespace=workload.namespace,
                    image=workload.image,
                    placement=where,
                    account_annotations=annotations,
                    volumes=volumes,
                    job_config=config,
                    processes=workload.processes,
                    use_jobset=workload.use_jobset,
                    max_restarts=workload.max_restarts,
                    deadline_seconds=workload.deadline_seconds,
                    ttl_seconds_after_finished=workload.ttl_seconds_after_finished,
                    coordinator_port=workload.coordinator_port,
                ),
                opts,
            )
        else:
            config = _uri(storage, refs[0]).apply(
                lambda u, w=workload: ServeJobConfig(
                    name=w.name, model=w.model, serve=w.serve, checkpoint_uri=u
                ).model_dump_json()
            )
            InferenceService(
                name,
                InferenceServiceArgs(
                    name=workload.name,
                    namespace=workload.namespace,
                    image=workload.image,
                    placement=where,
                    account_annotations=annotations,
                    volumes=volumes,
                    job_config=config,
                    port=workload.serve.port,
                    min_replicas=workload.min_replicas,
                    max_replicas=workload.max_replicas,
                    target_cpu_utilization=workload.target_cpu_utilization,
                ),
                opts,
            )
