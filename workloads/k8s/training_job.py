"""A multi-host JAX training job: one pod per JAX process, restarted as a whole from its checkpoint."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from meshstack.core.contract import (
    CHECKPOINT_URI_ENV,
    DATA_URI_ENV,
    EXIT_CONTRACT,
    EXIT_PREEMPTED,
    GRACE_SECONDS_ENV,
    INDEX_ENV,
    JOB_CONFIG_ENV,
    RESTART_ATTEMPT_ENV,
    TRAINER_COMMAND,
    host_contract,
)
from meshstack.workloads.k8s.metrics import MetricsBackend
from meshstack.workloads.k8s.objects import CustomObject
from meshstack.workloads.k8s.pod import Placement, security_context
from meshstack.workloads.k8s.workload_base import WorkloadArgs, waits_for, workload_base

# Karpenter disrupts no node that runs a pod annotated so: no consolidation or drift replacement under a
# training run (karpenter-provider-aws v1.14.1, docs/concepts/disruption.md "Pod-Level Controls").
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
COMPLETION_INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
JOB_INDEX = "metadata.annotations['jobset.sigs.k8s.io/job-index']"
RESTART_ATTEMPT = "metadata.labels['jobset.sigs.k8s.io/restart-attempt']"
CONTAINER = "train"
REPLICATED_JOB = "workers"
EXCLUSIVE_TOPOLOGY = "alpha.jobset.sigs.k8s.io/exclusive-topology"
MEGASCALE_PORT = 8080
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"


@dataclass(frozen=True, kw_only=True)
class TrainingJobArgs(WorkloadArgs):
    """A training job of one pod per process. The container runs its command with the environment
    contract, so the checkpoint and data URIs reach any program as variables."""

    processes: int
    """Processes, one pod each."""
    command: Sequence[str] = TRAINER_COMMAND
    """The container's command; meshstack's trainer by default."""
    args: Sequence[str] = ()
    """Arguments after `command`."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables beside the contract's."""
    checkpoint_uri: pulumi.Input[str] | None = None
    """MESHSTACK_CHECKPOINT_URI: where checkpoints go (s3:// or gs://)."""
    data_uri: pulumi.Input[str] | None = None
    """MESHSTACK_DATA_URI: where the training data is."""
    use_jobset: bool = True
    """A JobSet (one restartable group); else an Indexed Job with a headless Service."""
    max_restarts: int = 3
    """Whole-job restarts after a pod fails."""
    deadline_seconds: int = 86400
    """activeDeadlineSeconds of each job."""
    ttl_seconds_after_finished: int = 3600
    """How long a finished job object stays before Kubernetes deletes it."""
    coordinator_port: int = 1234
    """Port of process 0's JAX coordinator (JAX_COORDINATOR_ADDRESS)."""
    queue: str | None = None
    """A Kueue LocalQueue of the namespace: the job is created suspended and Kueue starts it once the queue's quota
    holds all its pods."""
    priority: str | None = None
    """A Kueue WorkloadPriorityClass."""
    grace_seconds: int = 60
    """The pod's termination grace: two steps and a save (sizing.preemption_grace_seconds)."""
    metrics: MetricsBackend = field(default_factory=MetricsBackend.operator)
    """Where the cluster's Prometheus lives, which scrapes the pods."""
    metrics_port: int | None = None
    """The port the pods serve metrics on, scraped by the cluster's Prometheus where set."""


# Which pod failures are the infrastructure's and which the program's (Job podFailurePolicy; the Job
# reports the matched rule's index in its failure message, "... matching FailJob rule at index N").
PREEMPTION_RULES = (0, 1)
MISCONFIGURED_RULE = 2


def pod_failure_policy(in_jobset: bool) -> dict[str, Any]:
    """A drained, preempted or evicted pod (DisruptionTarget), a trainer that saved and left on SIGTERM
    (143), and a contract error (2, which no restart heals). In a JobSet the first two fail the Job at
    once, for the JobSet rules to restart the group uncounted; a plain Indexed Job ignores them (the
    pod is replaced, not counted against backoffLimit). Any other exit is left to backoffLimit."""
    preempted = "FailJob" if in_jobset else "Ignore"

    def exit_code(code: int) -> dict[str, Any]:
        return {"containerName": CONTAINER, "operator": "In", "values": [code]}

    return {
        "rules": [
            {"action": preempted, "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": preempted, "onExitCodes": exit_code(EXIT_PREEMPTED)},
            {"action": "FailJob", "onExitCodes": exit_code(EXIT_CONTRACT)},
        ]
    }


def jobset_failure_policy(max_restarts: int) -> dict[str, Any]:
    """Preemption restarts the whole group from its checkpoint without spending maxRestarts (a few spot
    reclaims must not kill the job for good); a contract error ends it; anything else restarts it and
    counts (JobSet's default when no rule matches)."""
    return {
        "maxRestarts": max_restarts,
        "rules": [
            {
                "name": "preempted",
                "action": "RestartJobSetAndIgnoreMaxRestarts",
                "onJobFailureReasons": ["PodFailurePolicy"],
                "onJobFailureMessagePatterns": [f"matching FailJob rule at index {i}$" for i in PREEMPTION_RULES],
            },
            {
                "name": "misconfigured",
                "action": "FailJobSet",
                "onJobFailureReasons": ["PodFailurePolicy"],
                "onJobFailureMessagePatterns": [f"matching FailJob rule at index {MISCONFIGURED_RULE}$"],
            },
        ],
    }


def coordinator_host(name: str, use_jobset: bool) -> str:
    """Process 0's stable DNS name: JobSet's pod hostname on its headless service, or the Indexed Job's."""
    return f"{name}-{REPLICATED_JOB}-0-0.{name}" if use_jobset else f"{name}-0.{name}"


def host_env(args: TrainingJobArgs) -> list[dict[str, Any]]:
    """The contract's host variables, each index variable from the pod's completion index."""
    host = coordinator_host(args.name, args.use_jobset)
    fixed = host_contract(host, args.coordinator_port, args.processes, args.placement.devices)
    index = {"valueFrom": {"fieldRef": {"fieldPath": COMPLETION_INDEX}}}
    return [*({"name": k, "value": v} for k, v in fixed.items()), *({"name": k, **index} for k in INDEX_ENV)]


def storage_contract(args: TrainingJobArgs) -> list[dict[str, Any]]:
    """Where the program's checkpoints and data are, as the workload names them."""
    uris = ((CHECKPOINT_URI_ENV, args.checkpoint_uri), (DATA_URI_ENV, args.data_uri))
    return [{"name": name, "value": uri} for name, uri in uris if uri is not None]


def queue_labels(args: TrainingJobArgs) -> dict[str, str]:
    """What sends a job to Kueue: its LocalQueue, and its priority class when it has one."""
    labels = {QUEUE_LABEL: args.queue} if args.queue else {}
    if args.priority:
        labels[PRIORITY_LABEL] = args.priority
    return labels


def do_not_disrupt(placement: Placement) -> dict[str, dict[str, str]]:
    """The pod template's annotations on a pool Karpenter launches: its nodes stay while the job runs."""
    return {"annotations": {DO_NOT_DISRUPT: "true"}} if placement.pool.karpenter else {}


class TrainingJob(pulumi.ComponentResource):
    """A JobSet (or, without JobSet, an Indexed Job and its headless Service) whose pods carry the
    JAX environment contract, sit on the workload's pool, request its accelerators and EFA
    interfaces, mount its file systems and reach S3 through an IRSA role limited to its buckets.

    A lost pod fails the whole group (backoffLimit 0 per job), which is restarted from the latest
    checkpoint: without spending max_restarts when the pod was preempted or drained (it saved on
    SIGTERM within `grace_seconds`), counting when the program failed, never after a contract error.
    Each pod serves its metrics on `metrics_port`, scraped by the cluster's Prometheus.
    """

    def __init__(
        self,
        name: str,
        args: TrainingJobArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("meshstack:workloads:TrainingJob", name, None, opts)
        placement = args.placement
        child = pulumi.ResourceOptions(parent=self)
        namespace, processes = args.namespace, args.processes
        base = workload_base(name, args, child)
        labels = base.labels
        tpu = placement.pool.tpu
        env: list[dict[str, Any]] = [
            *([{"name": JOB_CONFIG_ENV, "value": args.job_config}] if args.job_config is not None else []),
            {"name": GRACE_SECONDS_ENV, "value": str(args.grace_seconds)},
            *storage_contract(args),
            *placement.environment(),
        ]
        if args.use_jobset:
            env.append({"name": RESTART_ATTEMPT_ENV, "valueFrom": {"fieldRef": {"fieldPath": RESTART_ATTEMPT}}})
        if tpu is None:
            env += host_env(args)
        elif tpu.slices > 1:
            # GKE sets TPU_WORKER_* per slice; the slices find each other over DCN through these.
            env += [
                {"name": "MEGASCALE_COORDINATOR_ADDRESS", "value": coordinator_host(args.name, True)},
                {"name": "MEGASCALE_NUM_SLICES", "value": str(tpu.slices)},
                {"name": "MEGASCALE_SLICE_ID", "valueFrom": {"fieldRef": {"fieldPath": JOB_INDEX}}},
                {"name": "MEGASCALE_PORT", "value": str(MEGASCALE_PORT)},
            ]
        env += [{"name": key, "value": value} for key, value in args.env.items()]
        ports = [{"name": "coordinator", "containerPort": args.coordinator_port}]
        if args.metrics_port is not None:
            ports.append({"name": "metrics", "containerPort": args.metrics_port})
        per_job = tpu.hosts if tpu is not None else processes
        pod: dict[str, Any] = {
            "serviceAccountName": args.name,
            "restartPolicy": "Never",
            # Time to finish the step in progress and save it after SIGTERM.
            "terminationGracePeriodSeconds": args.grace_seconds,
            "nodeSelector": placement.node_selector(),
            "tolerations": placement.tolerations(),
            "securityContext": {"runAsNonRoot": True, "fsGroup": 1000},
            "containers": [
                {
                    "name": CONTAINER,
                    "image": args.image,
                    "command": list(args.command),
                    **({"args": list(args.args)} if args.args else {}),
                    "env": env,
                    "ports": ports,
                    "resources": placement.resources(),
                    "securityContext": security_context(),
                    "volumeMounts": base.mounts,
                }
            ],
            "volumes": base.volumes,
        }
        job_spec: dict[str, Any] = {
            "parallelism": per_job,
            "completions": per_job,
            "completionMode": "Indexed",
            "activeDeadlineSeconds": args.deadline_seconds,
            "podFailurePolicy": pod_failure_policy(args.use_jobset),
            "template": {"metadata": {"labels": labels, **do_not_disrupt(placement)}, "spec": pod},
        }
        queued = queue_labels(args)
        # Kueue flips `suspend` once it admits the job; a later `up` must not suspend it again.
        # A JobSet's or Job's spec is immutable: a change (image, config, restarts) replaces the job,
        # the old one deleted first (same name), its pods saving on SIGTERM; the new one resumes
        # from the latest checkpoint.
        after = pulumi.ResourceOptions(
            parent=self,
            depends_on=[base.account, *waits_for(opts)],
            ignore_changes=["spec.suspend"] if args.queue else None,
            replace_on_changes=["spec"],
            delete_before_replace=True,
        )
        suspend = {"suspend": True} if args.queue else {}
        if args.use_jobset:
            body = {
                "apiVersion": "jobset.x-k8s.io/v1alpha2",
                "kind": "JobSet",
                "metadata": {
                    "name": args.name,
                    "namespace": namespace,
                    "labels": {**labels, **queued},
                    # one slice per node pool: two replicated jobs never share a slice
                    **({"annotations": {EXCLUSIVE_TOPOLOGY: "cloud.google.com/gke-nodepool"}} if tpu else {}),
                },
                "spec": {
                    **suspend,
                    "failurePolicy": jobset_failure_policy(args.max_restarts),
                    "ttlSecondsAfterFinished": args.ttl_seconds_after_finished,
                    "network": {"enableDNSHostnames": True},
                    "replicatedJobs": [
                        {
                            "name": REPLICATED_JOB,
                            "replicas": tpu.slices if tpu else 1,
                            "template": {"spec": {**job_spec, "backoffLimit": 0}},
                        }
                    ],
                },
            }
            self.job: pulumi.CustomResource = CustomObject(name, body, after)
        else:
            k8s.core.v1.Service(
                f"{name}-headless",
                metadata={"name": args.name, "namespace": namespace, "labels": labels},
                spec={
                    "clusterIP": "None",
                    "selector": {"batch.kubernetes.io/job-name": args.name},
                    "publishNotReadyAddresses": True,
                    "ports": [{"name": "coordinator", "port": args.coordinator_port}],
                },
                opts=child,
            )
            pod["subdomain"] = args.name
            self.job = k8s.batch.v1.Job(
                name,
                metadata={"name": args.name, "namespace": namespace, "labels": {**labels, **queued}},
                spec={
                    **job_spec,
                    **suspend,
                    "backoffLimit": args.max_restarts * processes,
                    "ttlSecondsAfterFinished": args.ttl_seconds_after_finished,
                },
                opts=after,
            )
        if args.metrics_port is not None:
            monitor = args.metrics.pod_monitor(args.name, namespace, labels, "metrics")
            CustomObject(f"{name}-metrics", monitor, pulumi.ResourceOptions(parent=self, depends_on=[self.job]))
        self.register_outputs({"name": args.name, "namespace": namespace})
