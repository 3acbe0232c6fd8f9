"""Google service accounts: one for the nodes with only what nodes need, one per workload bound through
Workload Identity and allowed only on its buckets."""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

# What GKE nodes need: write logs and metrics, read images. Never the default compute account.
# roles/container.defaultNodeServiceAccount is GKE's least-privilege node role ("At a minimum, these
# node service accounts must have" it: GKE "Configure node service accounts", read 2026-12-07); it
# holds the autoscaler's metrics writer, which the roles below lack. Those stay as they were (its
# permission list was not compared with theirs). Image pulls from Artifact Registry are not in it.
NODE_ROLES = (
    "roles/container.defaultNodeServiceAccount",
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
    "roles/artifactregistry.reader",
)
ANNOTATION = "iam.gke.io/gcp-service-account"


def account_id(name: str) -> str:
    """A service account id (6-30 of [a-z0-9-], starting with a letter) unique to `name`: a name that
    does not fit keeps its start and gains a digest of the whole, so two long names never collide."""
    clean = re.sub(r"[^a-z0-9-]", "-", name.lower())
    if not clean[:1].isalpha():
        clean = f"sa-{clean}"
    if len(clean) <= 30:
        return clean.rstrip("-").ljust(6, "x")
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{clean[:23].rstrip('-')}-{digest}"


def prefix_condition(bucket: str, prefix: str) -> dict[str, str] | None:
    """An IAM condition limiting object access to one prefix (the bucket's uniform access allows it).

    Listing is checked against the bucket itself, not an object, and GCS cannot limit it to a prefix:
    the condition lets the bucket through, so the identity lists every name in the bucket and reads
    or writes only under its prefix."""
    prefix = prefix.strip("/")
    if not prefix:
        return None
    objects = f"projects/_/buckets/{bucket}/objects/{prefix}/"
    return {
        "title": f"only {prefix}/"[:100],
        "expression": f'resource.type == "storage.googleapis.com/Bucket" || resource.name.startsWith("{objects}")',
    }


@dataclass(frozen=True)
class ClusterIdentityArgs:
    project: str
    """The project the node service account and workload identities are created in."""


class ClusterIdentity(pulumi.ComponentResource):
    node_email: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterIdentityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshstack:gcp:ClusterIdentity", name, None, opts)
        project = args.project
        child = pulumi.ResourceOptions(parent=self)
        nodes = gcp.serviceaccount.Account(
            f"{name}-nodes",
            project=project,
            account_id=account_id(f"{name}-nodes"),
            display_name=f"GKE nodes of {name}",
            opts=child,
        )
        for role in NODE_ROLES:
            gcp.projects.IAMMember(
                f"{name}-nodes-{role.rsplit('.', 1)[-1]}",
                project=project,
                role=role,
                member=nodes.member,
                opts=child,
            )
        self.node_email = nodes.email
        self.workloads = WorkloadAccounts(name, project, self)
        self.register_outputs({"node_email": self.node_email})

    def workload_account(
        self,
        name: str,
        namespace: str,
        service_account: str,
        scopes: Sequence[tuple[pulumi.Input[str], str]],
        read_only: bool,
        workload_pool: pulumi.Output[str],
    ) -> dict[str, pulumi.Output[str]]:
        return self.workloads.workload_account(name, namespace, service_account, scopes, read_only, workload_pool)


class WorkloadAccounts:
    """Google service accounts for one cluster's workloads, bound through its Workload Identity pool: a
    cluster the stack creates, or an existing one's."""

    def __init__(self, prefix: str, project: str, parent: pulumi.Resource) -> None:
        self._name, self._project = prefix, project
        self._child = pulumi.ResourceOptions(parent=parent)

    def workload_account(
        self,
        name: str,
        namespace: str,
        service_account: str,
        scopes: Sequence[tuple[pulumi.Input[str], str]],
        read_only: bool,
        workload_pool: pulumi.Output[str],
    ) -> dict[str, pulumi.Output[str]]:
        """A Google service account only `namespace/service_account` can act as, with object access under
        each (bucket, prefix) scope (prefix_condition).

        `workload_pool` is the cluster's `workload_identity_config.workload_pool` output: the pool
        (PROJECT.svc.id.goog) exists once the project's first Workload Identity cluster does, so a
        member naming it is created after the cluster. Returns the Kubernetes service account
        annotation that binds the two.
        """
        account = gcp.serviceaccount.Account(
            f"{self._name}-wl-{name}",
            project=self._project,
            # Scoped to this cluster's stack: two stacks in one project each get their own account.
            account_id=account_id(f"{self._name}-{name}"),
            display_name=f"workload {namespace}/{service_account}",
            opts=self._child,
        )
        gcp.serviceaccount.IAMMember(
            f"{self._name}-wl-{name}",
            service_account_id=account.name,
            role="roles/iam.workloadIdentityUser",
            member=workload_pool.apply(lambda pool: f"serviceAccount:{pool}[{namespace}/{service_account}]"),
            opts=self._child,
        )
        role = "roles/storage.objectViewer" if read_only else "roles/storage.objectUser"
        for i, (bucket, prefix) in enumerate(scopes):
            gcp.storage.BucketIAMMember(
                f"{self._name}-wl-{name}-{i}",
                bucket=bucket,
                role=role,
                member=account.member,
                condition=pulumi.Output.from_input(bucket).apply(functools.partial(prefix_condition, prefix=prefix)),
                opts=self._child,
            )
        return {ANNOTATION: account.email}
