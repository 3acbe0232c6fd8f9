"""The JobSet chart meshstack pins has every field the rendered JobSets use: each field's first release is
data read from kubernetes-sigs/jobset at its tags (workloads/k8s/jobset_api.yaml), and the shared CRD
schema every JobSet is validated against (tests/preview/test_manifests.py) is that of the pinned release."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

import meshstack.workloads.k8s
from meshstack.components.k8s.addons import CHARTS
from meshstack.core.stack_file import PROJECT_ROOT
from meshstack.preview.plan import Preview
from tests.conftest import SHIPPED_STACKS, of_type

Previewer = Callable[[str], Preview]
JOBSET = "kubernetes:jobset.x-k8s.io/v1alpha2:JobSet"
API = yaml.safe_load((Path(meshstack.workloads.k8s.__file__).parent / "jobset_api.yaml").read_text())
FIELD_REF = re.compile(r"^metadata\.(labels|annotations)\['(jobset\.sigs\.k8s\.io/[^']+)'\]$")


def version(tag: str) -> tuple[int, ...]:
    return tuple(int(p) for p in tag.lstrip("v").split("."))


def walk(value: Any, path: str) -> Iterator[str]:
    """The field paths of a JobSet's spec, lists as `[]`, with `action` values named; a replicated job's
    template is a batch/v1 Job template (kubernetes-validate checks it), so the walk stops there."""
    if isinstance(value, dict):
        for key, child in value.items():
            here = f"{path}.{key}"
            yield here
            if key == "action":
                yield f"{here}={child}"
            if key != "template":
                yield from walk(child, here)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item, f"{path}[]")


def used(body: dict[str, Any]) -> set[str]:
    out = set(walk(body["spec"], "spec"))
    for key in body["metadata"].get("annotations", {}):
        if "jobset.sigs.k8s.io" in key:
            out.add(f"metadata.annotations[{key}]")
    for job in body["spec"]["replicatedJobs"]:
        for container in job["template"]["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath", "")
                if match := FIELD_REF.match(ref):
                    out.add(f"pod.{match[1]}[{match[2]}]")
    return out


def rendered(preview: Previewer) -> set[str]:
    return {path for stack in SHIPPED_STACKS for r in of_type(preview(stack), JOBSET) for path in used(r.inputs)}


def test_every_rendered_jobset_field_is_in_the_pinned_release(preview: Previewer) -> None:
    paths = rendered(preview)
    assert "spec.failurePolicy.rules[].onJobFailureMessagePatterns" in paths
    unknown = sorted(paths - set(API["fields"]))
    assert not unknown, f"JobSet fields with no recorded first release (add them to jobset_api.yaml): {unknown}"
    pinned = version(CHARTS["jobset"]["version"])
    too_new = {p: API["fields"][p]["since"] for p in paths if version(API["fields"][p]["since"]) > pinned}
    assert not too_new, f"the JobSet chart {CHARTS['jobset']['version']} predates {too_new}"


def test_the_shared_jobset_schema_is_the_pinned_release() -> None:
    """The schema the manifests are validated against is the pinned release's CRD, and holds the field
    the failure policy depends on."""
    schema = API["schema"]
    assert version(schema["release"]) == version(CHARTS["jobset"]["version"])
    assert schema["commit"].startswith("08dfbdf")
    text = (PROJECT_ROOT.parent / "shared" / "k8s-schemas" / "jobset.x-k8s.io" / "jobset_v1alpha2.json").read_text()
    assert "onJobFailureMessagePatterns" in text
