"""What a cluster would do with each stack's objects, simulated: Kueue admits the queued jobs, the
node scaler adds nodes for their pods and for every inference replica. Every shipped stack's
workloads run; an oversubscribed stack shows which one waits and why."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meshstack.core.catalog import load_catalog
from meshstack.core.stack_file import find_project
from meshstack.core.types import WORKLOAD_NODES
from meshstack.preview.plan import Preview, preview_stack
from tests.conftest import SHIPPED_STACKS, stack_config
from tests.support.admission_model import ClusterModel, Outcome

MakeProject = Callable[[str, dict[str, Any]], Path]


def simulate(preview: Preview) -> tuple[ClusterModel, dict[str, Outcome]]:
    model = ClusterModel(preview.resources, load_catalog(cloud=preview.spec.cloud))
    return model, {o.workload: o for o in model.run()}


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_shipped_workload_is_admitted_and_placed(preview: Callable[[str], Preview], stack: str) -> None:
    result = preview(stack)
    model, outcomes = simulate(result)
    assert set(outcomes) == {w.name for w in result.spec.workloads}
    for outcome in outcomes.values():
        assert outcome.admitted and outcome.placed, f"{outcome.workload}: {outcome.reason}"
    queued = [w for w in model.workloads if w.kind == "JobSet"]
    assert queued and all(w.queue for w in queued), "every training job goes through Kueue"


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_the_running_cost_counts_the_nodes_the_simulated_pods_take(
    preview: Callable[[str], Preview], stack: str
) -> None:
    """Two independent counts of the same thing: the spec's demand arithmetic (which prices the stack
    while its workloads run) and this model's packing of the rendered pods onto nodes."""
    result = preview(stack)
    model, _ = simulate(result)
    declared: dict[str, float] = {}
    for r in result.resources:
        if r.type.startswith("meshstack:") and isinstance(r.inputs.get(WORKLOAD_NODES), dict):
            declared.update(r.inputs[WORKLOAD_NODES])
    pools = {
        r.name: r
        for r in result.resources
        if r.type in ("aws:eks/nodeGroup:NodeGroup", "gcp:container/nodePool:NodePool")
    }
    for name, nodes in model.nodes_by_pool().items():
        inputs = pools[name].inputs
        scaling = inputs.get("scalingConfig") or {}
        low = int(scaling.get("minSize", (inputs.get("autoscaling") or {}).get("minNodeCount", 0)))
        assert declared[name] == max(low, nodes), name


def test_a_queue_no_shipped_job_uses_takes_jobs_from_the_workload_namespaces(preview: Callable[[str], Preview]) -> None:
    """prod-aws's `experiments` queue has no job in the stack: it exists for jobs people submit. It gets a
    LocalQueue in each of the cluster's workload namespaces, so a JobSet sent to it in `ml` (here a copy
    of pretrain, with pretrain gone so the cohort's quota is idle) is admitted and placed."""
    result = preview("prod-aws")
    pretrain = next(r for r in result.resources if r.type.endswith(":JobSet") and r.name == "prod-aws-pretrain")
    body = copy.deepcopy(pretrain.inputs)
    body["metadata"]["name"] = "adhoc"
    body["metadata"]["labels"].update(
        {"kueue.x-k8s.io/queue-name": "experiments", "kueue.x-k8s.io/priority-class": "experiment"}
    )
    adhoc = dataclasses.replace(pretrain, urn=pretrain.urn.replace("prod-aws-pretrain", "adhoc"), name="adhoc")
    adhoc.inputs = body
    resources = [r for r in result.resources if r is not pretrain] + [adhoc]
    model = ClusterModel(resources, load_catalog(cloud="aws"))
    outcome = next(o for o in model.run() if o.workload == "adhoc")
    assert outcome.admitted and outcome.placed, outcome.reason


def oversubscribed(project_copy: MakeProject, pretrain: bool = True) -> Preview:
    """prod-aws with a fine-tuning job in the experiments queue, which owns no H100s and borrows
    the pretraining queue's through their cohort."""
    config = stack_config("prod-aws")
    workloads = config["meshstack:workloads"]
    finetune = {
        **workloads[0],
        "name": "finetune",
        "processes": 2,
        "mesh": {"data": 2, "fsdp": 8},
        "queue": "experiments",
        "priority": "experiment",
        "checkpoints": {"bucket": "checkpoints", "prefix": "finetune"},
    }
    workloads.insert(0, finetune)
    if not pretrain:
        workloads.remove(next(w for w in workloads if w["name"] == "pretrain"))
        chat = next(w for w in workloads if w["name"] == "chat")
        del chat["from_training"]
        chat["checkpoints"] = {"bucket": "checkpoints", "prefix": "pretrain"}
    config["meshstack:budget"]["max_accelerators"] = 64
    return preview_stack("prod-aws", find_project(project_copy("prod-aws", config)))


@pytest.mark.slow
def test_a_job_that_borrows_waits_while_the_lender_needs_its_quota(project_copy: MakeProject) -> None:
    _, outcomes = simulate(oversubscribed(project_copy))
    assert outcomes["pretrain"].admitted and outcomes["pretrain"].placed, "higher priority is admitted first"
    waiting = outcomes["finetune"]
    assert not waiting.admitted
    assert "ClusterQueue 'experiments' has 0 " in waiting.reason and "of flavor 'h100' left" in waiting.reason


@pytest.mark.slow
def test_the_same_job_borrows_the_idle_quota_of_its_cohort(project_copy: MakeProject) -> None:
    _, outcomes = simulate(oversubscribed(project_copy, pretrain=False))
    assert outcomes["finetune"].admitted and outcomes["finetune"].placed, outcomes["finetune"].reason


@pytest.mark.slow
def test_replicas_beyond_the_pools_max_stay_pending(project_copy: MakeProject) -> None:
    """Validation cannot know how busy a service gets; the model shows what its max would need."""
    config = stack_config("dev")
    config["meshstack:clusters"][0]["node_pools"][0]["max_nodes"] = 1
    _, outcomes = simulate(preview_stack("dev", find_project(project_copy("dev", config))))
    chat = outcomes["tiny-chat"]
    assert chat.admitted and not chat.placed
    assert chat.reason == "a pod stays Pending: every pool it fits is full (dev-dev-system at its max of 1)"
    assert outcomes["tiny"].placed


def test_a_failed_gpu_node_is_replaced_and_the_job_resumes_without_spending_a_restart(
    preview: Callable[[str], Preview],
) -> None:
    """A GPU of prod-aws's pretrain fails its health check: repair drains its node (DisruptionTarget on
    the pod), the Job fails at once on podFailurePolicy rule 0, the JobSet's `preempted` rule restarts the
    group without counting, a new node takes the failed one's place and the restarted pods read the same
    checkpoint location (the trainer resumes from its newest step there: tests/workloads/jax/test_preemption.py). Three
    faults in a row still leave every one of max_restarts."""
    model, outcomes = simulate(preview("prod-aws"))
    assert outcomes["pretrain"].placed
    for _ in range(3):
        fault = model.node_fault("pretrain")
        assert fault.job_failure_message.endswith("matching FailJob rule at index 0")
        assert (fault.jobset_rule, fault.action) == ("preempted", "RestartJobSetAndIgnoreMaxRestarts")
        assert fault.restarts_counted == 0
        assert fault.replaced_nodes == 1 and fault.placed
        before, after = fault.checkpoint_uris
        assert before and before == after
