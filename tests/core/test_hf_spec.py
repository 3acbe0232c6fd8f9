"""Hugging Face folders in a stack: a training workload's `init_from` (in the stack's buckets, or a
path) that meshstack's trainer fine-tunes, and an inference workload's `weights` that meshstack's
server serves; the job configs name them, the identities may read them, other programs are refused
init_from."""

from __future__ import annotations

import json
from pathlib import Path

from meshstack.core.contract import JOB_CONFIG_ENV
from meshstack.core.stack_file import spec_from_config
from meshstack.workloads.local.training import local_training
from tests.conftest import stack_config
from tests.support.specs import problem, training


def test_init_from_a_bucket_is_in_the_job_and_the_identity(tmp_path: Path) -> None:
    config = stack_config("prod-aws")
    training(config)["init_from"] = {"bucket": "datasets", "prefix": "llama-3-8b"}
    spec = spec_from_config("prod-aws", config)
    workload = spec.workloads[0]
    assert any(r.prefix == "llama-3-8b" for r in spec.storage_refs(workload))
    job, _, _ = local_training(spec, workload, tmp_path, 1)  # type: ignore[arg-type]
    assert job.init_from_uri == (tmp_path / "buckets" / "datasets" / "llama-3-8b").as_uri()


def test_init_from_a_path_is_passed_as_a_file_uri(tmp_path: Path, preview) -> None:  # type: ignore[no-untyped-def]
    config = stack_config("prod-aws")
    training(config)["init_from"] = str(tmp_path / "model")
    spec = spec_from_config("prod-aws", config)
    job, _, _ = local_training(spec, spec.workloads[0], tmp_path, 1)  # type: ignore[arg-type]
    assert job.init_from_uri == (tmp_path / "model").as_uri()


def test_init_from_reaches_the_pods_job_config(project_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from meshstack.core.stack_file import find_project
    from meshstack.preview.plan import preview_stack

    config = stack_config("prod-aws")
    training(config)["init_from"] = {"bucket": "datasets", "prefix": "llama-3-8b"}
    preview = preview_stack("prod-aws", find_project(project_copy("prod-aws", config)))
    configs = [
        json.loads(env["value"])
        for r in preview.resources
        for env in _envs(r.inputs)
        if env.get("name") == JOB_CONFIG_ENV and "value" in env
    ]
    trainers = [c for c in configs if "train" in c]
    assert trainers and all(c["init_from_uri"].endswith("/llama-3-8b") for c in trainers)


def _envs(tree: object) -> list[dict]:  # type: ignore[type-arg]
    found: list[dict] = []  # type: ignore[type-arg]
    if isinstance(tree, dict):
        if isinstance(tree.get("env"), list):
            found += [e for e in tree["env"] if isinstance(e, dict)]
        for value in tree.values():
            found += _envs(value)
    elif isinstance(tree, list):
        for value in tree:
            found += _envs(value)
    return found


def test_init_from_is_refused_where_it_cannot_apply() -> None:
    def maxtext(config: dict) -> None:  # type: ignore[type-arg]
        training(config).update(program="maxtext", init_from={"bucket": "datasets", "prefix": "m"})

    assert problem(maxtext) == (
        "workloads[0].init_from",
        "meshstack's trainer only: another program loads its own weights",
    )
    path, message = problem(lambda c: training(c).update(init_from={"bucket": "nope", "prefix": "m"}))
    assert path == "workloads[0].init_from.bucket" and "'nope' is not a bucket of this stack" in message


def test_meshstacks_server_serves_weights_in_hugging_faces_format(project_copy) -> None:  # type: ignore[no-untyped-def]
    from meshstack.core.stack_file import find_project
    from meshstack.preview.plan import preview_stack

    config = stack_config("prod-aws")
    server = config["meshstack:workloads"][1]
    del server["from_training"]
    server["weights"] = {"bucket": "checkpoints", "prefix": "hf/llama"}
    spec = spec_from_config("prod-aws", config)
    assert spec.checkpoints_of(spec.workloads[1]).prefix == "hf/llama"  # type: ignore[arg-type]
    assert [r.prefix for r in spec.storage_refs(spec.workloads[1])] == ["hf/llama"]
    preview = preview_stack("prod-aws", find_project(project_copy("prod-aws", config)))
    served = [
        json.loads(env["value"])
        for r in preview.resources
        for env in _envs(r.inputs)
        if env.get("name") == JOB_CONFIG_ENV and "value" in env and "serve" in json.loads(env["value"])
    ]
    assert served and all(c["checkpoint_uri"].endswith("/hf/llama") for c in served)
    path, message = problem(
        lambda c: c["meshstack:workloads"][1].update(weights={"bucket": "checkpoints", "prefix": "x"})
    )
    assert path == "workloads[1].checkpoints" and "or weights (a Hugging Face folder)" in message
