"""What a training job and an inference service both start from: labels, a bound service account, volumes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from meshstack.core.spec import InferenceWorkload, TrainingWorkload
from workloads.k8s.pod import Placement, claim_volumes, scratch_volumes
from workloads.k8s.volumes import FileSystemRef, claims


@dataclass(frozen=True)
class Target:
    """Where and as whom a workload runs: its share of a node, its cloud identity, the file systems it may
    mount, and the cluster's provider and add-ons (which it waits for)."""

    placement: Placement
    account_annotations: Mapping[str, pulumi.Input[str]]
    filesystems: Mapping[tuple[str, str], FileSystemRef]
    provider: k8s.Provider
    depends_on: list[pulumi.Resource]


@dataclass(frozen=True)
class WorkloadBase:
    labels: dict[str, str]
    account: k8s.core.v1.ServiceAccount
    volumes: list[dict[str, Any]]
    mounts: list[dict[str, Any]]


def workload_base(
    name: str, workload: TrainingWorkload | InferenceWorkload, target: Target, opts: pulumi.ResourceOptions
) -> WorkloadBase:
    """The service account carries the cloud identity (IRSA role or GCP service account) its pods use."""
    labels = {"app.kubernetes.io/name": workload.name, "app.kubernetes.io/managed-by": "meshstack"}
    account = k8s.core.v1.ServiceAccount(
        name,
        metadata={
            "name": workload.name,
            "namespace": workload.namespace,
            "labels": labels,
            "annotations": dict(target.account_annotations),
        },
        opts=opts,
    )
    scratch, scratch_mounts = scratch_volumes()
    data, data_mounts = claim_volumes(
        claims(workload.name, workload.namespace, workload.mounts, target.filesystems, opts)
    )
    return WorkloadBase(labels, account, scratch + data, scratch_mounts + data_mounts)
