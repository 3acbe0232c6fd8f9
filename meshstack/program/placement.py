"""Puts a stack's workloads onto its clusters: identities, URIs, programs and servers, and the Kubernetes components."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from meshstack.components.platform import Platform, StorageTargets
from meshstack.core import sizing
from meshstack.core.capacity import devices_per_pod, queue_of
from meshstack.core.nodes import NodePoolArgs
from meshstack.core.spec import InferenceWorkload, StackSpec, StorageRef, TrainingWorkload
from meshstack.core.spec.workload import PROGRAM_GRACE_SECONDS
from meshstack.program.programs import ProgramContext, training_program
from meshstack.program.servers import ServingContext, server_container, server_image
from meshstack.workloads.k8s.inference_service import InferenceService, InferenceServiceArgs
from meshstack.workloads.k8s.pod import Placement
from meshstack.workloads.k8s.training_job import TrainingJob, TrainingJobArgs
from meshstack.workloads.k8s.volumes import VolumeMount

Workload = TrainingWorkload | InferenceWorkload


def placement(spec: StackSpec, workload: Workload, pool: NodePoolArgs) -> Placement:
    return Placement.for_devices(pool, devices_per_pod(workload, spec.pool_of(workload)))


def _uri(storage: StorageTargets, ref: StorageRef | None) -> pulumi.Output[str] | None:
    return storage.uri(ref.bucket, ref.prefix) if ref is not None else None


def _init_from(storage: StorageTargets, ref: StorageRef | str | None) -> pulumi.Output[str] | None:
    """A pretrained folder's URI: in the stack's storage, or a path the pods see (an image's, a mount's)."""
    if isinstance(ref, str):
        return pulumi.Output.from_input(ref if "://" in ref else f"file://{ref}")
    return _uri(storage, ref)


def grace_seconds(workload: TrainingWorkload, devices: int, peak: float | None) -> int:
    """The pods' termination grace: the stack's own figure; for meshstack's trainer, the step in
    progress and the save at the planning MFU; a fixed allowance for programs meshstack cannot size."""
    if workload.grace_seconds is not None:
        return workload.grace_seconds
    if workload.custom or workload.program != "meshstack":
        return PROGRAM_GRACE_SECONDS
    train = workload.train
    step_tokens = train.global_batch * train.seq_len
    model = sizing.of_model(workload.model)
    return sizing.preemption_grace_seconds(
        model, step_tokens, devices, workload.processes, peak or 0, sizing.PLANNING_MFU
    )


def deploy_workloads(spec: StackSpec, pools: Mapping[tuple[str, str], NodePoolArgs], platform: Platform) -> None:
    """Each workload gets an identity allowed on exactly the buckets it names, then its Kubernetes component."""
    storage = platform.storage
    tokens: dict[str, pulumi.Output[str]] = {}
    for workload in spec.workloads:
        cluster = platform.clusters[workload.cluster]
        where = placement(spec, workload, pools[(workload.cluster, workload.node_pool)])
        name = f"{spec.name}-{workload.name}"
        refs = spec.storage_refs(workload)
        # A workload that reads no bucket (a server on a Hub model) gets no cloud identity at all.
        annotations = (
            cluster.grant(
                workload.name,
                workload.namespace,
                workload.name,
                sorted({(r.bucket, r.prefix.strip("/")) for r in refs}),
                isinstance(workload, InferenceWorkload),
            )
            if refs
            else {}
        )
        opts = pulumi.ResourceOptions(provider=cluster.provider, depends_on=[cluster.addons])
        # The WorkloadArgs fields both components share.
        shared: dict[str, Any] = {
            "name": workload.name,
            "namespace": workload.namespace,
            "placement": where,
            "account_annotations": annotations,
            "volumes": [VolumeMount(m.source[1], m.path, storage.filesystems[m.source]) for m in workload.mounts],
        }
        if isinstance(workload, TrainingWorkload):
            peak = where.pool.accelerator.bf16_tflops or None
            ctx = ProgramContext(
                workload,
                where,
                _uri(storage, workload.data),
                _uri(storage, workload.checkpoints),
                peak,
                workload.scrape_port,
                _init_from(storage, workload.init_from),
            )
            program = training_program(ctx)
            TrainingJob(
                name,
                TrainingJobArgs(
                    **shared,
                    image=str(workload.image),
                    job_config=program.job_config,
                    command=program.command,
                    args=program.args,
                    env=program.env,
                    checkpoint_uri=ctx.checkpoint_uri,
                    data_uri=ctx.data_uri,
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
                    metrics_port=workload.scrape_port,
                ),
                opts,
            )
        else:
            serving = ServingContext(
                workload, where, _uri(storage, refs[0]) if refs else None, workload.from_training is not None
            )
            service = InferenceService(
                name,
                InferenceServiceArgs(
                    **shared,
                    image=server_image(serving),
                    server=server_container(serving),
                    min_replicas=workload.min_replicas,
                    max_replicas=workload.max_replicas,
                    target_in_flight=workload.target_in_flight or default_target(workload),
                    metrics=cluster.metrics,
                    client_namespaces=workload.clients.namespaces,
                    client_labels=workload.clients.pod_labels,
                    token_secret=workload.token_secret,
                    drain_seconds=workload.serve.drain_timeout_s,
                ),
                opts,
            )
            if service.token is not None:
                tokens[workload.name] = service.token
    if tokens:
        # what callers send as `Authorization: Bearer`: `pulumi stack output --show-secrets service_tokens`
        pulumi.export("service_tokens", tokens)


def default_target(workload: InferenceWorkload) -> int:
    """Requests per replica KEDA scales towards: what one replica decodes together."""
    return workload.vllm.max_num_seqs if workload.engine == "vllm" else workload.serve.max_batch_size
