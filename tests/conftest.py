"""Shared fixtures: the shipped stacks, copies of them to break, and their offline previews."""

from __future__ import annotations

import copy
import functools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshstack.core.stack_file import PROJECT_ROOT, Project, find_project, read_stack_config
from meshstack.preview.manifests import kubernetes_objects
from meshstack.preview.plan import Preview, preview_stack
from meshstack.preview.recorder import Resource

# The files the tests read, wherever a test module sits in the tree below.
FIXTURES = Path(__file__).parent / "fixtures"

SHIPPED_STACKS = ("dev", "prod-aws", "prod-gcp")
AWS_STACKS = ("dev", "prod-aws")


@pytest.fixture(scope="session")
def project() -> Project:
    return find_project(PROJECT_ROOT)


@functools.cache
def _preview(stack: str) -> Preview:
    return preview_stack(stack, find_project(PROJECT_ROOT))


@pytest.fixture(scope="session")
def preview() -> Callable[[str], Preview]:
    """Previews are deterministic, so each shipped stack is run under the mocks once per session."""
    return _preview


def stack_config(stack: str) -> dict[str, Any]:
    return copy.deepcopy(read_stack_config(find_project(PROJECT_ROOT), stack))


@pytest.fixture
def project_copy(tmp_path: Path) -> Callable[[str, dict[str, Any]], Path]:
    """A copy of the project holding one stack file with the given config; returns the project root."""

    def make(stack: str, config: dict[str, Any]) -> Path:
        root = tmp_path / "project"
        (root / "stacks").mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
        shutil.copy(PROJECT_ROOT / "stacks" / "__main__.py", root / "stacks" / "__main__.py")
        (root / "stacks" / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))
        return root

    return make


def of_type(preview: Preview, typ: str) -> list[Resource]:
    return [r for r in preview.resources if r.type == typ]


def one(preview: Preview, typ: str, name: str) -> Resource:
    matches = [r for r in of_type(preview, typ) if r.name == name]
    assert len(matches) == 1, f"expected one {typ} named {name}, found {[r.name for r in of_type(preview, typ)]}"
    return matches[0]


def scannable(resources: list[Resource]) -> list[dict[str, Any]]:
    """Every Kubernetes object a preview renders, with each JobSet's job templates also as the Jobs its
    controller creates: kubernetes-validate and checkov know Jobs, not JobSets."""
    out = []
    for _, body in kubernetes_objects(resources):
        out.append(body)
        if body["kind"] == "JobSet":
            for job in body["spec"]["replicatedJobs"]:
                name = f"{body['metadata']['name']}-{job['name']}"
                metadata = {"name": name, "namespace": body["metadata"].get("namespace", "default")}
                out.append(
                    {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job["template"]["spec"]}
                )
    return out


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small model trained for 60 steps, for the serving tests (every module serves the same one)."""
    from meshstack.core.contract import JobConfig
    from meshstack.workloads.jax.data import ensure_corpus
    from meshstack.workloads.jax.train import run

    root = tmp_path_factory.mktemp("serve")
    data, ckpt = (root / "data").as_uri(), (root / "ckpt").as_uri()
    ensure_corpus(data)
    run(
        JobConfig(
            name="t",
            data_uri=data,
            checkpoint_uri=ckpt,
            train={"steps": 60, "global_batch": 8, "checkpoint_every": 60, "log_every": 60},
        )
    )
    return ckpt


@pytest.fixture(scope="session")
def hf_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small BPE tokenizer trained here with Hugging Face's tokenizers, saved as transformers saves one."""
    from tests.support.hf_models import train_tokenizer

    return train_tokenizer(tmp_path_factory.mktemp("hf-tokenizer"))


@pytest.fixture(scope="session")
def hf_model(tmp_path_factory: pytest.TempPathFactory, hf_tokenizer: Path) -> Path:
    """A tiny random Llama (grouped-query attention, untied) saved by transformers with that tokenizer."""
    from tests.support.hf_models import VARIANTS, tiny_llama

    return tiny_llama(tmp_path_factory.mktemp("hf-model"), hf_tokenizer, seed=2, **VARIANTS["gqa-untied"])
