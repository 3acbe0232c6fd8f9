"""Keys and images: KMS keys rotate, ECR repositories keep tags immutable and scan what is pushed."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from meshstack.core.resources import ResourceView
from meshstack.policies.rule import Finding, RuleSet, Undecided, as_list, as_map, get, is_true, text
from meshstack.policies.values import Unknown

KMS_KEY = "aws:kms/key:Key"
REPOSITORY = "aws:ecr/repository:Repository"
# A creation template makes the repositories that pull-through caches and replication create on push.
CREATION_TEMPLATE = "aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate"
REGISTRY_SCANNING = "aws:ecr/registryScanningConfiguration:RegistryScanningConfiguration"
IMMUTABLE = ("IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION")
SCANNING_FREQUENCIES = ("SCAN_ON_PUSH", "CONTINUOUS_SCAN")


RULES = RuleSet()


@RULES.rule(
    id="MS-AWS-014",
    name="kms-key-rotation",
    description="Symmetric KMS keys rotate their key material automatically.",
    severity="medium",
    enforcement="mandatory",
    resource_types=(KMS_KEY,),
    remediation="Set enable_key_rotation=True (meshstack's keys rotate yearly).",
)
def kms_rotation(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str | Undecided]:
    """Only symmetric encryption keys in KMS's own key store can rotate automatically; asymmetric, HMAC and
    custom-key-store keys are left alone."""
    props = resource.props
    spec = text(props.get("customerMasterKeySpec") or "SYMMETRIC_DEFAULT")
    usage = text(props.get("keyUsage") or "ENCRYPT_DECRYPT")
    if spec != "SYMMETRIC_DEFAULT" or usage != "ENCRYPT_DECRYPT" or props.get("customKeyStoreId"):
        return
    rotation = props.get("enableKeyRotation")
    if isinstance(rotation, Unknown):
        yield Undecided(f"KMS key '{resource.name}': rotation unknown")
    elif not is_true(rotation):
        yield f"KMS key '{resource.name}' does not rotate its key material (enable_key_rotation is not true)"


@RULES.rule(
    id="MS-AWS-015",
    name="ecr-tag-immutability",
    description="ECR repositories keep image tags immutable, so a tag always names the image it was pushed as.",
    severity="medium",
    enforcement="mandatory",
    resource_types=(REPOSITORY, CREATION_TEMPLATE),
    remediation="Set image_tag_mutability='IMMUTABLE' (or IMMUTABLE_WITH_EXCLUSION for a moving tag you name).",
)
def ecr_immutable(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    mutability = text(resource.props.get("imageTagMutability") or "MUTABLE")
    if mutability not in IMMUTABLE:
        what = "repository creation template" if resource.type == CREATION_TEMPLATE else "repository"
        yield f"{what} '{resource.name}' lets a tag be pushed again (image_tag_mutability {mutability})"


def _registry_scans(config: ResourceView, repository: str) -> bool:
    """A registry scanning configuration covers a repository: enhanced scanning, or a basic rule that scans
    on push with a filter matching its name."""
    if text(config.props.get("scanType")) == "ENHANCED":
        return any(
            text(get(rule, "scanFrequency")) in SCANNING_FREQUENCIES for rule in as_list(config.props.get("rules"))
        )
    for rule in as_list(config.props.get("rules")):
        if text(get(rule, "scanFrequency")) not in SCANNING_FREQUENCIES:
            continue
        filters = [text(get(f, "filter")) for f in as_list(get(rule, "repositoryFilters"))]
        if any(fnmatch.fnmatchcase(repository, f) for f in filters if f):
            return True
    return False


@RULES.rule(
    id="MS-AWS-016",
    name="ecr-scan-on-push",
    description="Images pushed to ECR are scanned for vulnerabilities: by the repository, or by the "
    "registry's scanning configuration.",
    severity="medium",
    enforcement="mandatory",
    kind="stack",
    resource_types=(REPOSITORY, REGISTRY_SCANNING),
    remediation="Set image_scanning_configuration={'scan_on_push': True}, or declare an "
    "aws.ecr.RegistryScanningConfiguration that scans on push.",
)
def ecr_scan_on_push(resources: Sequence[ResourceView], config: Mapping[str, Any]) -> Iterable[Finding | Undecided]:
    registry = [r for r in resources if r.type == REGISTRY_SCANNING]
    for repo in (r for r in resources if r.type == REPOSITORY):
        name = repo.props.get("name")
        scan = get(as_map(repo.props.get("imageScanningConfiguration")), "scanOnPush")
        if is_true(scan) or (isinstance(name, str) and any(_registry_scans(c, name) for c in registry)):
            continue
        if isinstance(scan, Unknown) or (isinstance(name, Unknown) and registry):
            yield Undecided(f"repository '{repo.name}': whether pushed images are scanned is unknown", repo.urn)
        else:
            yield Finding(f"repository '{repo.name}' does not scan images on push", repo.urn)
