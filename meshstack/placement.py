"""Puts a stack's workloads onto its clusters: roles, URIs, job configs and the Kubernetes components."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.aws.eks import EksCluster
from components.aws.iam import ClusterIam
from components.aws.storage import Storage
from components.catalog import Catalog
from meshstack.spec import InferenceWorkload, StackSpec, StorageRef, TrainingWorkload
from workloads.jax.config import JobConfig, ServeJobConfig
from workloads.k8s.inference_service import InferenceService
from workloads.k8s.pod import Placement
from workloads.k8s.training_job import TrainingJob
from workloads.k8s.volumes import FileSystemRef

Workload = TrainingWorkload | InferenceWorkload


def placement(spec: StackSpec, workload: Workload, catalog: Catalog) -> Placement:
    pool = spec.pool_of(workload)
    instance = catalog.instance_types[str(pool.instance_type)]
    per_node = pool.accelerators_per_node or 0
    if isinstance(workload, TrainingWorkload):
        devices = spec.devices_per_process(workload) if per_node else 0
    else:
        devices = workload.devices_per_replica if workload.devices_per_replica is not None else min(per_node, 1)
    pods_per_node = per_node // devices if devices else max(instance.vcpus // 4, 1)
    return Placement(pool, instance, catalog.accelerators[pool.accelerator], devices, pods_per_node)


def uri(storage: Storage, ref: StorageRef) -> pulumi.Output[str]:
    prefix = ref.prefix.strip("/")
    return storage.buckets[ref.bucket].name.apply(lambda b: f"s3://{b}/{prefix}" if prefix else f"s3://{b}")


def filesystems(spec: StackSpec, storage: Storage) -> dict[tuple[str, str], FileSystemRef]:
    refs: dict[tuple[str, str], FileSystemRef] = {}
    for fs in spec.storage.lustre:
        stored = storage.lustre[fs.name]
        refs[("lustre", fs.name)] = FileSystemRef(
            "fsx.csi.aws.com",
            stored.id,
            fs.capacity_gib,
            {"dnsname": stored.dns_name, "mountname": stored.mount_name},
            ("flock",),
        )
    for efs in spec.storage.efs:
        refs[("efs", efs.name)] = FileSystemRef("efs.csi.aws.com", storage.efs[efs.name], max(int(efs.size_gib), 1))
    return refs


@dataclass(frozen=True)
class Cluster:
    iam: ClusterIam
    eks: EksCluster


def deploy_workloads(spec: StackSpec, catalog: Catalog, storage: Storage, clusters: dict[str, Cluster]) -> None:
    """Each workload gets an IRSA role on exactly the buckets it names, then its Kubernetes component."""
    mounts = filesystems(spec, storage)
    for workload in spec.workloads:
        cluster = clusters[workload.cluster]
        where = placement(spec, workload, catalog)
        name = f"{spec.name}-{workload.name}"
        if isinstance(workload, TrainingWorkload):
            refs = [workload.data, workload.checkpoints]
        else:
            refs = [spec.checkpoints_of(workload)]
        role = cluster.iam.service_account_role(
            workload.name,
            workload.namespace,
            workload.name,
            [storage.buckets[r.bucket].arn for r in refs],
            [storage.kms_key_arn],
            read_only=isinstance(workload, InferenceWorkload),
        )
        common = {
            "placement": where,
            "role_arn": role.arn,
            "filesystems": mounts,
            "provider": cluster.eks.provider,
            "depends_on": [cluster.eks.addons],
        }
        if isinstance(workload, TrainingWorkload):
            peak = where.accelerator.bf16_tflops or None
            config = pulumi.Output.all(uri(storage, workload.data), uri(storage, workload.checkpoints)).apply(
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
            TrainingJob(name, workload, job_config=config, **common)
        else:
            config = uri(storage, refs[0]).apply(
                lambda u, w=workload: ServeJobConfig(
                    name=w.name, model=w.model, serve=w.serve, checkpoint_uri=u
                ).model_dump_json()
            )
            InferenceService(name, workload, job_config=config, **common)
