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
    """Where and as whom a workload runs. The cluster's Kubernetes provider comes through
    `opts.provider`, and what the pods must wait for (add-ons, CRDs) through `opts.depends_on`, as for
    any Pulumi component."""

    name: str
    """The workload's name: its Kubernetes objects and service account."""
    namespace: str
    """The namespace its objects go in."""
    image: str
    """The container image its pods run."""
    placement: Placement
    """The pool its pods run on and how much of a node each takes."""
    job_config: pulumi.Input[str] | None = None
    """MESHSTACK_JOB_CONFIG, the JSON meshstack's own trainer and server read; other programs get none."""
    account_annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Annotations of its service account that carry the cloud identity its pods use (an IRSA role ARN, a GCP
    service account)."""
    volumes: Sequence[VolumeMount] = ()
    """The existing file systems its pods mount."""


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
