"""AWS storage at rest: S3 buckets block every form of public access and encrypt by default with KMS;
FSx and EFS file systems are encrypted.

Each rule names, as data, every resource type that carries its concept: the legacy and V2 variants of a
resource, the provider's default resources, the other ways to launch an instance (launch configurations,
spot requests and fleets), account-wide defaults and inline blocks. tests/policies/test_policy_types.py checks
every one against the types the installed provider SDK registers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from meshstack.core.resources import ResourceView
from meshstack.policies.rule import (
    Finding,
    RuleSet,
    Undecided,
    as_list,
    get,
    is_true,
    text,
)
from meshstack.policies.values import Unknown

BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
ACCOUNT_PUBLIC_ACCESS_BLOCK = "aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock"
SSE_TYPES = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
BLOCK_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
LUSTRE = "aws:fsx/lustreFileSystem:LustreFileSystem"
FSX_TYPES = (
    LUSTRE,
    "aws:fsx/ontapFileSystem:OntapFileSystem",
    "aws:fsx/openZfsFileSystem:OpenZfsFileSystem",
    "aws:fsx/windowsFileSystem:WindowsFileSystem",
)


def _bucket_keys(bucket: ResourceView) -> set[str]:
    """A bucket's sub-resources name it by its id (= its name); either counts."""
    return {v for v in (bucket.props.get("id"), bucket.props.get("bucket")) if isinstance(v, str) and v}


def _names(sub: ResourceView, bucket: ResourceView) -> bool | None:
    """Whether a sub-resource belongs to the bucket: by the name it gives, or (while that name is still
    unknown, in the preview of a new stack) by depending on the bucket. None: cannot tell."""
    named = sub.props.get("bucket")
    if isinstance(named, Unknown):
        return True if bucket.urn in sub.dependencies else (None if not sub.dependencies else False)
    return isinstance(named, str) and named in _bucket_keys(bucket)


def _companions(resources: Sequence[ResourceView], types: Sequence[str], bucket: ResourceView) -> list[ResourceView]:
    return [r for r in resources if r.type in types and _names(r, bucket)]


def _flags_off(block: ResourceView) -> tuple[list[str], list[str]]:
    """(flags off, flags unknown) of a public access block."""
    off = [f for f in BLOCK_FLAGS if not isinstance(block.props.get(f), Unknown) and not is_true(block.props.get(f))]
    return off, [f for f in BLOCK_FLAGS if isinstance(block.props.get(f), Unknown)]


RULES = RuleSet()


@RULES.rule(
    id="MS-AWS-001",
    name="s3-public-access-blocked",
    description="S3 buckets block every form of public access, and no public access block (a bucket's or "
    "the account's) leaves a flag off.",
    severity="critical",
    enforcement="mandatory",
    kind="stack",
    resource_types=(*BUCKET_TYPES, PUBLIC_ACCESS_BLOCK, ACCOUNT_PUBLIC_ACCESS_BLOCK),
    remediation="Give the bucket an aws.s3.BucketPublicAccessBlock (or the account an "
    "aws.s3.AccountPublicAccessBlock) with all four flags true (meshstack's Storage component does this).",
)
def s3_public_access_blocked(
    resources: Sequence[ResourceView], config: Mapping[str, Any]
) -> Iterable[Finding | Undecided]:
    """Every block stands on its own (a block with a flag off is a violation wherever it is), and every bucket
    has one: its own, or the account's with all four flags on."""
    account_blocked = False
    for block in (r for r in resources if r.type in (PUBLIC_ACCESS_BLOCK, ACCOUNT_PUBLIC_ACCESS_BLOCK)):
        off, unknown = _flags_off(block)
        scope = "the account's" if block.type == ACCOUNT_PUBLIC_ACCESS_BLOCK else f"'{block.name}'"
        if off:
            yield Finding(f"public access block {scope} leaves {', '.join(off)} off", block.urn)
        elif unknown:
            yield Undecided(f"public access block {scope}: {', '.join(unknown)} unknown", block.urn)
        elif block.type == ACCOUNT_PUBLIC_ACCESS_BLOCK:
            account_blocked = True
    for bucket in (r for r in resources if r.type in BUCKET_TYPES):
        if account_blocked:
            continue
        blocks = [r for r in resources if r.type == PUBLIC_ACCESS_BLOCK]
        owners = [_names(b, bucket) for b in blocks]
        if not any(owners):
            if None in owners:
                yield Undecided(f"bucket '{bucket.name}': which public access block is its own is unknown", bucket.urn)
            else:
                yield Finding(f"bucket '{bucket.name}' has no public access block", bucket.urn)


def _inline_algorithms(bucket: ResourceView) -> list[Any]:
    """The default-encryption algorithms a bucket declares inline: one block on Bucket, a list on BucketV2."""
    configs = [
        *as_list(bucket.props.get("serverSideEncryptionConfiguration")),
        *as_list(bucket.props.get("serverSideEncryptionConfigurations")),
    ]
    return [
        get(default, "sseAlgorithm")
        for c in configs
        for rule in [*as_list(get(c, "rule")), *as_list(get(c, "rules"))]
        for default in [
            *as_list(get(rule, "applyServerSideEncryptionByDefault")),
            *as_list(get(rule, "applyServerSideEncryptionByDefaults")),
        ]
    ]


@RULES.rule(
    id="MS-AWS-002",
    name="s3-encrypted",
    description="S3 buckets encrypt objects by default with KMS.",
    severity="high",
    enforcement="mandatory",
    kind="stack",
    resource_types=(*BUCKET_TYPES, *SSE_TYPES),
    config={
        "allow_sse_s3": {
            "type": "boolean",
            "default": False,
            "description": "Accept SSE-S3 (AES256) as well as SSE-KMS.",
        }
    },
    remediation="Add an aws.s3.BucketServerSideEncryptionConfiguration with sse_algorithm 'aws:kms'.",
)
def s3_encrypted(resources: Sequence[ResourceView], config: Mapping[str, Any]) -> Iterable[Finding | Undecided]:
    allowed = {"aws:kms", "aws:kms:dsse"} | ({"AES256"} if config["allow_sse_s3"] else set())
    for bucket in (r for r in resources if r.type in BUCKET_TYPES):
        rules = [rule for sse in _companions(resources, SSE_TYPES, bucket) for rule in as_list(sse.props.get("rules"))]
        algorithms = [
            *(get(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm") for rule in rules),
            *_inline_algorithms(bucket),
        ]
        if any(a in allowed for a in algorithms):
            continue
        if any(isinstance(a, Unknown) for a in algorithms):
            yield Undecided(f"bucket '{bucket.name}': its default encryption algorithm is unknown", bucket.urn)
            continue
        found = ", ".join(sorted({a for a in algorithms if isinstance(a, str) and a})) or "none"
        yield Finding(
            f"bucket '{bucket.name}' default encryption is {found}; required: {' or '.join(sorted(allowed))}",
            bucket.urn,
        )


@RULES.rule(
    id="MS-AWS-011",
    name="fsx-encrypted",
    description="FSx file systems (persistent Lustre, ONTAP, OpenZFS, Windows) use a customer-managed KMS key.",
    severity="high",
    enforcement="mandatory",
    resource_types=FSX_TYPES,
    config={"require_customer_key": {"type": "boolean", "default": True}},
    remediation="Set kms_key_id to the stack's storage key.",
)
def fsx_encrypted(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    """Scratch Lustre cannot take a customer key (AWS encrypts it with its own); every other FSx can."""
    if resource.type == LUSTRE and not text(resource.props.get("deploymentType")).startswith("PERSISTENT"):
        return
    if config["require_customer_key"] and not resource.props.get("kmsKeyId"):
        yield f"FSx file system '{resource.name}' is not encrypted with a customer-managed KMS key"


@RULES.rule(
    id="MS-AWS-012",
    name="efs-encrypted",
    description="EFS file systems are encrypted at rest.",
    severity="high",
    enforcement="mandatory",
    resource_types=("aws:efs/fileSystem:FileSystem",),
    remediation="Set encrypted=True and kms_key_id.",
)
def efs_encrypted(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str | Undecided]:
    encrypted = resource.props.get("encrypted")
    if isinstance(encrypted, Unknown):
        yield Undecided(f"EFS '{resource.name}': encryption unknown")
    elif not is_true(encrypted):
        yield f"EFS '{resource.name}' is not encrypted at rest"
