"""`meshstack preview --manifests DIR`, run as a user runs it, and every object it writes checked against
an oracle nobody here wrote: custom resources against their published CRD schemas (../shared/k8s-schemas),
core kinds against kubernetes-validate at the cluster's version."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from meshstack.core.stack_file import PROJECT_ROOT
from meshstack.preview.plan import Preview
from tests.conftest import SHIPPED_STACKS
from tests.support.schemas import crd_schema


def written(stack: str, out: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "meshstack.cli", "preview", "--stack", stack, "--json", "--manifests", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert f"Kubernetes manifest(s) under {out}" in done.stderr
    return [yaml.safe_load(p.read_text()) for p in sorted(out.rglob("*.yaml"))]


@pytest.mark.slow
@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_manifests_are_written_one_file_per_object_and_validate(
    stack: str, tmp_path: Path, preview: Callable[[str], Preview]
) -> None:
    objects = written(stack, tmp_path)
    expected = [r for r in preview(stack).resources if r.type.startswith("kubernetes:") and "helm.sh" not in r.type]
    assert len(objects) == len(expected) >= 8
    folders = {p.parent.name for p in tmp_path.rglob("*.yaml")}
    assert folders == {f"{stack}-{c.name}-k8s" for c in preview(stack).spec.clusters}
    version = preview(stack).spec.clusters[0].kubernetes_version + ".0"
    custom = 0
    for body in objects:
        group = body["apiVersion"].split("/")[0]
        if "." in group and not group.endswith(".k8s.io"):
            custom += 1
            schema = crd_schema(body["apiVersion"], body["kind"])
            errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(body))
            assert not errors, f"{body['kind']} {body['metadata']['name']}: {[e.message for e in errors]}"
        else:
            kubernetes_validate.validate(body, version, strict=True)
    assert custom >= 1  # every shipped stack trains with a JobSet


@pytest.mark.slow
def test_manifests_carry_integers_as_the_api_server_expects(tmp_path: Path) -> None:
    objects = written("dev", tmp_path)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    period = container["readinessProbe"]["periodSeconds"]
    assert period == 5 and isinstance(period, int)
    scaled = next(o for o in objects if o["kind"] == "ScaledObject")
    assert scaled["spec"]["maxReplicaCount"] == 2 and isinstance(scaled["spec"]["maxReplicaCount"], int)
    assert "uid" not in deployment["metadata"]


def test_the_jobset_schema_rejects_what_the_api_server_would() -> None:
    schema = crd_schema("jobset.x-k8s.io/v1alpha2", "JobSet")
    bad = {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "spec": {"failurePolicy": {"maxRestart": 3}}}
    assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors(bad))
