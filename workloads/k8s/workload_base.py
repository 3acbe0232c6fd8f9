"""What a training job and an inference service both take and build: labels, a bound service account, volumes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from meshstack.workloads.k8s.pod import Placement, claim_volumes, scratch_volumes
from meshstack.workloads.k8s.volumes import VolumeMount, claims


@dataclass(frozen=True, kw_only=True)
class WorkloadArgs:
    """Where and as whom a workload runs.

    `job_config` is what meshstack's own trainer and server read; other programs get none.
    `account_annotations` carry the cloud identity its pods use (an IRSA role ARN, a GCP
    service account); `volumes` are the existing file systems it mounts. The cluster's
    Kubernetes provider comes through `opts.provider`, and what the pods must wait for
    (add-ons, CRDs) through `opts.depends_on`, as for any Pulumi component.
    """

    name: str
    namespace: str
    image: str
    placement: Placement
    job_config: pulumi.Input[str] | None = None  # MESHSTACK_JOB_CONFIG, for meshstack's own programs
    account_annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    volumes: Sequence[VolumeMount] = ()


@dataclass(frozen=True)
class WorkloadBase:
    labels: dict[str, str]
    account: k8s.core.v1.ServiceAccount
    volumes: list[dict[str, Any]]
    mounts: list[dict[str, Any]]


def workload_base(name: str, args: WorkloadArgs, opts: pulumi.ResourceOptions) -> WorkloadBase:
    labels = {"app.kubernetes.io/name": args.name, "app.kubernetes.io/managed-by": "meshstack"}
    account = k8s.core.v1.ServiceAccount(
        name,
        metadata={
            "name": args.name,
            "namespace": args.namespace,
            "labels": labels,
            "annotations": dict(args.account_annotations),
        },
        opts=opts,
    )
    scratch, scratch_mounts = scratch_volumes()
    data, data_mounts = claim_volumes(claims(args.name, args.namespace, args.volumes, opts))
    return WorkloadBase(labels, account, scratch + data, scratch_mounts + data_mounts)


def waits_for(opts: pulumi.ResourceOptions | None) -> list[pulumi.Resource]:
    """The component's own depends_on, handed to the children that need it: Pulumi does not pass it down."""
    deps = opts.depends_on if opts is not None else None
    if deps is None:
        return []
    return [d for d in (deps if isinstance(deps, list | tuple) else [deps]) if isinstance(d, pulumi.Resource)]
