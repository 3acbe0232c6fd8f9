"""Where pods' images come from: a registry the stack allows (its own ECR or Artifact Registry by default),
at a fixed tag or a digest."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from meshstack.core.resources import ResourceView
from meshstack.policies.pod_templates import (
    WORKLOAD_TYPES,
    each_container,
    is_workload,
)
from meshstack.policies.rule import (
    STRING_LIST,
    Finding,
    RuleSet,
    Undecided,
    text,
)
from meshstack.policies.values import Unknown

PLACEHOLDERS = ("account", "region", "project")
ARN = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:([a-z0-9-]+):(\d{12}):")

RULES = RuleSet()


def image_reference(image: str) -> tuple[str, str, str]:
    """(repository with its registry host, tag, digest) as a container runtime resolves a reference:
    `nginx` is `docker.io/library/nginx`, `repo@sha256:...` has a digest and no tag."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = ""
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    first = name.split("/", 1)[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        name = f"docker.io/{name if '/' in name else 'library/' + name}"
    return name, tag, digest


def stack_identity(resources: Sequence[ResourceView]) -> dict[str, str]:
    """The AWS account and region (from the stack's own ARNs) and the GCP project its resources live in."""
    identity: dict[str, str] = {}
    for r in resources:
        value = r.props.get("arn")
        arn = ARN.match(value) if isinstance(value, str) else None  # an unknown ARN (preview) tells nothing
        if arn and "account" not in identity:
            identity["region"], identity["account"] = arn.group(1), arn.group(2)
        project = r.props.get("project")
        if r.type.startswith("gcp:") and isinstance(project, str) and project and "project" not in identity:
            identity["project"] = project
    return identity


def unfilled(allowed: Sequence[str], identity: Mapping[str, str]) -> list[str]:
    """Allow-list entries that need a placeholder this stack's known values cannot fill."""
    return [e for e in allowed if any(f"{{{key}}}" in e and key not in identity for key in PLACEHOLDERS)]


def registry_patterns(allowed: Sequence[str], identity: Mapping[str, str]) -> list[str]:
    """The allow-list with {account}, {region} and {project} filled in; an entry whose placeholder this
    stack cannot fill (an ECR entry on a GCP stack) admits nothing."""
    patterns = []
    for entry in allowed:
        if any(f"{{{key}}}" in entry and key not in identity for key in PLACEHOLDERS):
            continue
        for key, value in identity.items():
            entry = entry.replace(f"{{{key}}}", value)
        patterns.append(entry)
    return patterns


def _could_fill(entry: str, repository: str) -> bool:
    """Whether an entry with unfilled placeholders could admit the repository once they are known."""
    return fnmatch.fnmatchcase(repository, re.sub(r"\{(account|region|project)\}", "*", entry))


@RULES.rule(
    id="MS-K8S-007",
    name="pod-images-allowed",
    description="Images come from the stack's own registry or an allowed one (and, where required, are "
    "pinned by digest).",
    severity="high",
    enforcement="mandatory",
    kind="stack",
    resource_types=WORKLOAD_TYPES,
    config={
        "allowed_registries": {
            **STRING_LIST,
            "default": [
                "{account}.dkr.ecr.{region}.amazonaws.com/*",
                "*-docker.pkg.dev/{project}/*",
                "registry.k8s.io/*",
                "nvcr.io/nvidia/*",
                "public.ecr.aws/neuron/*",
            ],
            "description": "Globs over the image's repository (registry host and path, without tag or "
            "digest). {account} and {region} are the stack's AWS account and region, {project} its GCP "
            "project, read from the stack's own resources.",
        },
        "require_digest": {
            "type": "boolean",
            "default": False,
            "description": "Images must be image@sha256:... (set in production stacks).",
        },
    },
    remediation="Push the image to the stack's own ECR or Artifact Registry (or add its repository to "
    "allowed_registries) and reference it as registry/name@sha256:<digest>.",
)
def images_allowed(resources: Sequence[ResourceView], config: Mapping[str, Any]) -> Iterable[Finding | Undecided]:
    """Decided image by image: while the stack's ARNs are unknown (`pulumi preview` of a new stack) an image
    that only an {account} entry could admit is undecided; every other image is judged as usual."""
    allowed = [str(p) for p in config["allowed_registries"]]
    identity = stack_identity(resources)
    patterns = registry_patterns(allowed, identity)
    pending = [
        e for e in unfilled(allowed, identity) if any(isinstance(r.props.get("arn"), Unknown) for r in resources)
    ]
    for resource in (r for r in resources if is_workload(r)):
        for where, _, c in each_container(resource):
            image = text(c.get("image"))
            if isinstance(c.get("image"), Unknown):
                yield Undecided(f"{where}: its image is unknown", resource.urn)
                continue
            repository, _, digest = image_reference(image)
            if not any(fnmatch.fnmatchcase(repository, p) for p in patterns):
                if any(_could_fill(e, repository) for e in pending):
                    yield Undecided(f"{where} pulls {repository}: the stack's account is unknown", resource.urn)
                else:
                    yield Finding(f"{where} pulls {repository}, which no allowed registry entry admits", resource.urn)
            if config["require_digest"] and not digest:
                yield Finding(f"{where} image '{image}' is not pinned by digest", resource.urn)


@RULES.rule(
    id="MS-K8S-008",
    name="pod-image-tag-pinned",
    description="Images name a fixed tag or a digest, never :latest or no tag at all.",
    severity="medium",
    enforcement="mandatory",
    resource_types=WORKLOAD_TYPES,
    remediation="Reference the image by a release tag (name:1.4.2) or, better, by digest (name@sha256:...).",
)
def image_tag_pinned(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    for where, _, c in each_container(resource):
        if isinstance(c.get("image"), Unknown):
            continue
        image = text(c.get("image"))
        _, tag, digest = image_reference(image)
        if not digest and tag in ("", "latest"):
            yield f"{where} image '{image}' has no fixed tag (none, or :latest): the next pull may run other code"
