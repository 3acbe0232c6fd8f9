"""Workload validation: placement, mesh shape and storage references are checked before anything is declared."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from meshstack.core.stack_file import spec_from_config
from tests.conftest import stack_config
from tests.support.specs import inference, problem, training


def test_shipped_workloads_resolve() -> None:
    spec = spec_from_config("prod-aws", stack_config("prod-aws"))
    pretrain = spec.workloads[0]
    assert spec.devices_per_process(pretrain) == 8
    assert spec.checkpoints_of(spec.workloads[1]).bucket == "checkpoints"


@pytest.mark.parametrize(
    ("change", "path", "text"),
    [
        (lambda c: training(c).update(cluster="nope"), "workloads[0].cluster", "no cluster 'nope'"),
        (lambda c: training(c).update(node_pool="gpu"), "workloads[0].node_pool", "has no pool 'gpu'"),
        (
            lambda c: training(c).update(mesh={"data": 2, "fsdp": 8}),
            "workloads[0].mesh",
            "data x fsdp x tensor = 16 must equal processes x devices_per_process = 4 x 8 = 32",
        ),
        (
            lambda c: training(c).update(devices_per_process=16),
            "workloads[0].devices_per_process",
            "nodes have 8 accelerators",
        ),
        (
            lambda c: (
                training(c).update(processes=5, mesh={"data": 5, "fsdp": 8}),
                training(c)["train"].update(global_batch=320),
            ),
            "workloads[0].processes",
            "5 processes do not fit pool 'h100' (max_nodes 4 x 1 per node)",
        ),
        (
            lambda c: training(c)["data"].update(bucket="missing"),
            "workloads[0].data.bucket",
            "'missing' is not a bucket of this stack",
        ),
        (
            lambda c: training(c)["mounts"][0].update(lustre="other"),
            "workloads[0].mounts[0].lustre",
            "no lustre file system 'other'",
        ),
        (
            lambda c: training(c)["mounts"][0].update(efs="home"),
            "workloads[0].mounts[0].lustre",
            "name exactly one of lustre, efs or filestore",
        ),
        (
            lambda c: training(c)["train"].update(global_batch=224),
            "workloads[0].train.global_batch",
            "each micro-batch (56 sequences) must split evenly over data x fsdp = 32",
        ),
        (
            lambda c: training(c)["model"].update(num_attention_heads=12),
            "workloads[0].model.num_attention_heads",
            "hidden_size 2048 is not divisible by num_attention_heads 12",
        ),
        (
            lambda c: training(c)["train"].update(seq_len=4096),
            "workloads[0].train.seq_len",
            "exceeds model.max_position_embeddings 2048",
        ),
        (
            lambda c: inference(c).update(from_training="nope"),
            "workloads[1].from_training",
            "no training workload 'nope'",
        ),
        (
            lambda c: inference(c).update(checkpoints={"bucket": "checkpoints"}),
            "workloads[1].checkpoints",
            "give exactly one of checkpoints or from_training",
        ),
        (lambda c: inference(c).update(min_replicas=5), "workloads[1].min_replicas", "exceeds max_replicas 4"),
        (lambda c: inference(c).update(kind="batch"), "workloads[1]", "tag 'batch'"),
        (lambda c: inference(c).update(name="pretrain"), "workloads[1].name", "used twice"),
    ],
)
def test_workload_rules(change: Callable[[dict[str, Any]], None], path: str, text: str) -> None:
    found_path, message = problem(change)
    assert found_path == path
    assert text in message, message


def test_mesh_axis_must_divide_the_model() -> None:
    def change(config: dict[str, Any]) -> None:
        training(config).update(mesh={"data": 1, "fsdp": 8, "tensor": 4})
        training(config)["model"].update(num_attention_heads=2, hidden_size=2048)

    path, message = problem(change)
    assert path == "workloads[0].mesh.tensor"
    assert "model.num_attention_heads 2 is not divisible by mesh.tensor 4" in message
