"""Puts a stack's workloads onto its clusters: identities, URIs, job configs and the Kubernetes components."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.k8s.addons import ClusterAddons
from meshstack.core.catalog import Catalog
from meshstack.core.contract import JobConfig, ServeJobConfig
from meshstack.core.spec import InferenceWorkload, StackSpec, StorageRef, TrainingWorkload
from workloads.k8s.inference_service import InferenceService
from workloads.k8s.pod import Placement, TpuSlices
from workloads.k8s.training_job import TrainingJob
from workloads.k8s.volumes import FileSystemRef
from workloads.k8s.workload_base import Target

Workload = TrainingWorkload | InferenceWorkload
# (workload, namespace, service account, bucket names, read only) -> the service account's annotations
Grant = Callable[[str, str, str, Sequence[str], bool], Mapping[str, pulumi.Input[str]]]


@dataclass(frozen=True)
class Cluster:
    """What a workload needs of the cluster it runs on, whichever cloud built it."""

    provider: k8s.Provider
    addons: ClusterAddons
    grant: Grant


@dataclass(frozen=True)
class StorageTargets:
    """The stack's buckets by spec name, the URI scheme that reaches them, and its mountable file systems."""

    scheme: str
    buckets: Mapping[str, pulumi.Output[str]]
    filesystems: Mapping[tuple[str, str], FileSystemRef]

    def uri(self, ref: StorageRef) -> pulumi.Output[str]:
        prefix = ref.prefix.strip("/")
        return self.buckets[ref.bucket].apply(
            lambda b: f"{self.scheme}://{b}/{prefix}" if prefix else f"{self.scheme}://{b}"
        )


def placement(spec: StackSpec, workload: Workload, catalog: Catalog) -> Placement:
    pool = spec.pool_of(workload)
    instance = catalog.instance_types[str(pool.instance_type)]
    per_node = pool.accelerators_per_node or 0
    tpu = None
    if catalog.is_tpu(pool.accelerator):
        shape = catalog.tpus[pool.accelerator].topologies[str(pool.topology)]
        tpu = TpuSlices(catalog.tpus[pool.accelerator].gke_accelerator, str(pool.topology), pool.slices, shape.hosts)
        devices = per_node
    elif isinstance(workload, TrainingWorkload):
        devices = spec.devices_per_process(workload) if per_node else 0
    else:
        devices = workload.devices_per_replica if workload.devices_per_replica is not None else min(per_node, 1)
    pods_per_node = per_node // devices if devices else max(instance.vcpus // 4, 1)
    return Placement(pool, instance, catalog.accelerators[pool.accelerator], devices, pods_per_node, tpu)


def deploy_workloads(spec: StackSpec, catalog: Catalog, storage: StorageTargets, clusters: dict[str, Cluster]) -> None:
    """Each workload gets an identity allowed on exactly the buckets it names, then its Kubernetes component."""
    for workload in spec.workloads:
        cluster = clusters[workload.cluster]
        where = placement(spec, workload, catalog)
        name = f"{spec.name}-{workload.name}"
        if isinstance(workload, TrainingWorkload):
            refs = [workload.data, workload.checkpoints]
        else:
            refs = [spec.checkpoints_of(workload)]
        annotations = cluster.grant(
            workload.name,
            workload.namespace,
            workload.name,
            sorted({r.bucket for r in refs}),
            isinstance(workload, InferenceWorkload),
        )
        target = Target(where, annotations, storage.filesystems, cluster.provider, [cluster.addons])
        if isinstance(workload, TrainingWorkload):
            peak = where.accelerator.bf16_tflops or None
            config = pulumi.Output.all(storage.uri(workload.data), storage.uri(workload.checkpoints)).apply(
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
            TrainingJob(name, workload, target, job_config=config)
        else:
            config = storage.uri(refs[0]).apply(
                lambda u, w=workload: ServeJobConfig(
                    name=w.name, model=w.model, serve=w.serve, checkpoint_uri=u
                ).model_dump_json()
            )
            InferenceService(name, workload, target, job_config=config)
