"""Where data and checkpoints live: S3, FSx for Lustre linked to S3, and EFS."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from meshstack.components.aws.iam import Deployer, deployer, partition
from meshstack.components.tags import named
from meshstack.core.storage import BucketSpec, LustreSpec, StorageSpec
from meshstack.core.types import EXPECTED_GIB

LUSTRE_PORTS = ((988, 988), (1018, 1023))
NFS_PORT = 2049


@dataclass(frozen=True)
class StoredBucket:
    name: pulumi.Output[str]
    arn: pulumi.Output[str]


@dataclass(frozen=True)
class StoredLustre:
    id: pulumi.Output[str]
    dns_name: pulumi.Output[str]
    mount_name: pulumi.Output[str]
    mount_path: str


def deny_insecure_transport(bucket_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )


@dataclass(frozen=True, kw_only=True)
class StorageArgs:
    """The stack's S3 buckets, FSx for Lustre and EFS file systems, encrypted with one KMS key."""

    storage: StorageSpec
    """The stack's buckets and file systems (its `storage` spec section)."""
    vpc_id: pulumi.Input[str]
    """The VPC the file systems' security group is created in."""
    private_subnet_ids: Sequence[pulumi.Input[str]]
    """Subnets the file systems' mount targets go in."""
    node_security_group_id: pulumi.Input[str]
    """The only group allowed to reach the file systems (NFS, Lustre)."""
    lustre_subnets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Where each Lustre file system goes, by name (the subnet of the pools that mount it); the first subnet
    otherwise."""
    region: str = "us-east-1"
    """The region the key policy and endpoints name."""
    deployer: Deployer | None = None
    """Who runs the program (its account, for the KMS key policy); looked up when not given."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags every taggable resource gets."""


def key_policy(account: str, region: str, s3_via: bool) -> str:
    """The account administers the key (the default policy); where FSx for Lustre links an encrypted
    bucket, S3 may use the key on the account's behalf, which the FSx S3 access role's reads and writes
    go through (FSx for Lustre guide, "Working with server-side encrypted Amazon S3 buckets")."""
    part = partition(region)
    statements: list[dict[str, Any]] = [
        {
            "Sid": "AccountAdministers",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{part}:iam::{account}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    if s3_via:
        statements.append(
            {
                "Sid": "S3OnBehalfOfTheAccount",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com", "kms:CallerAccount": account}
                },
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


class Storage(pulumi.ComponentResource):
    """Every store is encrypted with the stack's storage key and reachable only from the nodes."""

    kms_key_arn: pulumi.Output[str]
    buckets: dict[str, StoredBucket]
    lustre: dict[str, StoredLustre]
    efs: dict[str, pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        args: StorageArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        spec, tags, vpc_id = args.storage, args.tags, args.vpc_id
        # S3 and EFS grow with what is stored: the spec's expected sizes travel as this component's
        # inputs, where the cost estimate (and the budget rule) find them.
        sizes = [(b.name, b.size_gib) for b in spec.buckets] + [(fs.name, fs.size_gib) for fs in spec.efs]
        expected = {f"{name}-{store}": gib for store, gib in sizes if gib}
        super().__init__("meshstack:aws:Storage", name, {EXPECTED_GIB: expected}, opts)
        private_subnet_ids, node_security_group_id = args.private_subnet_ids, args.node_security_group_id
        self._name = name
        self._tags = dict(tags)
        self._child = pulumi.ResourceOptions(parent=self)
        account = (args.deployer or deployer()).account
        linked = any(fs.s3_bucket is not None for fs in spec.lustre)
        key = aws.kms.Key(
            f"{name}-key",
            description=f"Encryption of {name} buckets and file systems",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=key_policy(account, args.region, linked),
            tags=named(tags, f"{name}-key"),
            opts=self._child,
        )
        self.kms_key_arn = key.arn
        self.buckets = {b.name: self._bucket(b, key) for b in spec.buckets}
        self.lustre = {}
        if spec.lustre:
            sg = self._security_group("lustre", vpc_id, node_security_group_id, LUSTRE_PORTS)
            self._lustre_paths(sg, node_security_group_id)
            self.lustre = {
                fs.name: self._lustre(fs, key, args.lustre_subnets.get(fs.name, private_subnet_ids[0]), sg)
                for fs in spec.lustre
            }
        self.efs = {}
        if spec.efs:
            sg = self._security_group("efs", vpc_id, node_security_group_id, ((NFS_PORT, NFS_PORT),))
            for fs_spec in spec.efs:
                fs = aws.efs.FileSystem(
                    f"{name}-{fs_spec.name}",
                    encrypted=True,
                    kms_key_id=key.arn,
                    performance_mode=fs_spec.performance_mode,
                    throughput_mode=fs_spec.throughput_mode,
                    provisioned_throughput_in_mibps=fs_spec.provisioned_mibps,
                    lifecycle_policies=[{"transition_to_ia": "AFTER_30_DAYS"}],
                    tags=named(tags, f"{name}-{fs_spec.name}"),
                    opts=self._child,
                )
                for i, subnet in enumerate(private_subnet_ids):
                    aws.efs.MountTarget(
                        f"{name}-{fs_spec.name}-{i}",
                        file_system_id=fs.id,
                        subnet_id=subnet,
                        security_groups=[sg.id],
                        opts=self._child,
                    )
                self.efs[fs_spec.name] = fs.id
        self.register_outputs(
            {
                "kms_key_arn": self.kms_key_arn,
                "buckets": {k: v.name for k, v in self.buckets.items()},
                "lustre": {k: v.dns_name for k, v in self.lustre.items()},
                "efs": self.efs,
            }
        )

    def _bucket(self, spec: BucketSpec, key: aws.kms.Key) -> StoredBucket:
        name = f"{self._name}-{spec.name}"
        bucket = aws.s3.Bucket(name, force_destroy=False, tags=named(self._tags, name), opts=self._child)
        aws.s3.BucketPublicAccessBlock(
            name,
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=self._child,
        )
        aws.s3.BucketOwnershipControls(
            name, bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=self._child
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            name,
            bucket=bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": key.arn,
                    },
                    "bucket_key_enabled": True,
                }
            ],
            opts=self._child,
        )
        aws.s3.BucketPolicy(name, bucket=bucket.id, policy=bucket.arn.apply(deny_insecure_transport), opts=self._child)
        rules: list[Any] = [
            {
                "id": "abort-incomplete-uploads",
                "status": "Enabled",
                "filter": {"prefix": ""},
                "abort_incomplete_multipart_upload": {"days_after_initiation": spec.abort_incomplete_upload_days},
            }
        ]
        if spec.versioning:
            versioning = aws.s3.BucketVersioning(
                name, bucket=bucket.id, versioning_configuration={"status": "Enabled"}, opts=self._child
            )
            rules.append(
                {
                    "id": "expire-noncurrent-versions",
                    "status": "Enabled",
                    "filter": {"prefix": ""},
                    "noncurrent_version_expiration": {"noncurrent_days": spec.noncurrent_expiration_days},
                }
            )
            lifecycle_opts = pulumi.ResourceOptions(parent=self, depends_on=[versioning])
        else:
            lifecycle_opts = self._child
        aws.s3.BucketLifecycleConfiguration(name, bucket=bucket.id, rules=rules, opts=lifecycle_opts)
        return StoredBucket(name=bucket.bucket, arn=bucket.arn)

    def _security_group(
        self,
        kind: str,
        vpc_id: pulumi.Input[str],
        node_security_group_id: pulumi.Input[str],
        ports: Sequence[tuple[int, int]],
    ) -> aws.ec2.SecurityGroup:
        name = f"{self._name}-{kind}"
        sg = aws.ec2.SecurityGroup(
            name,
            vpc_id=vpc_id,
            description=f"meshstack {kind}: only from cluster nodes (and itself)",
            tags=named(self._tags, name),
            opts=self._child,
        )
        for low, high in ports:
            for source, ref in (("nodes", node_security_group_id), ("self", sg.id)):
                aws.vpc.SecurityGroupIngressRule(
                    f"{name}-{source}-{low}",
                    security_group_id=sg.id,
                    referenced_security_group_id=ref,
                    ip_protocol="tcp",
                    from_port=low,
                    to_port=high,
                    description=f"{kind} {low}-{high} from {source}",
                    tags=named(self._tags, f"{name}-{source}-{low}"),
                    opts=self._child,
                )
        return sg

    def _lustre_paths(self, sg: aws.ec2.SecurityGroup, nodes: pulumi.Input[str]) -> None:
        """Lustre servers talk to each other and call back to their clients on 988 and 1018-1023, and
        reach S3 for a linked bucket: the group needs that egress (a security group declared here has
        none), and the nodes' group must admit the servers (FSx for Lustre guide, "File system access
        control with Amazon VPC")."""
        name = f"{self._name}-lustre"
        for low, high in LUSTRE_PORTS:
            for target, ref in (("self", sg.id), ("nodes", nodes)):
                aws.vpc.SecurityGroupEgressRule(
                    f"{name}-to-{target}-{low}",
                    security_group_id=sg.id,
                    referenced_security_group_id=ref,
                    ip_protocol="tcp",
                    from_port=low,
                    to_port=high,
                    description=f"lustre {low}-{high} to {target}",
                    tags=named(self._tags, f"{name}-to-{target}-{low}"),
                    opts=self._child,
                )
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-clients-{low}",
                security_group_id=nodes,
                referenced_security_group_id=sg.id,
                ip_protocol="tcp",
                from_port=low,
                to_port=high,
                description=f"lustre servers to their clients, {low}-{high}",
                tags=named(self._tags, f"{name}-clients-{low}"),
                opts=self._child,
            )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-to-s3",
            security_group_id=sg.id,
            cidr_ipv4="0.0.0.0/0",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            description="HTTPS to S3 for the linked bucket (the gateway endpoint carries it)",
            tags=named(self._tags, f"{name}-to-s3"),
            opts=self._child,
        )

    def _lustre(
        self, spec: LustreSpec, key: aws.kms.Key, subnet_id: pulumi.Input[str], sg: aws.ec2.SecurityGroup
    ) -> StoredLustre:
        name = f"{self._name}-{spec.name}"
        persistent = spec.deployment_type == "PERSISTENT_2"
        fs = aws.fsx.LustreFileSystem(
            name,
            storage_capacity=spec.capacity_gib,
            deployment_type=spec.deployment_type,
            per_unit_storage_throughput=spec.throughput_per_tib,
            subnet_ids=subnet_id,
            security_group_ids=[sg.id],
            kms_key_id=key.arn if persistent else None,
            file_system_type_version="2.15",
            data_compression_type="LZ4",
            tags=named(self._tags, name),
            opts=self._child,
        )
        if spec.s3_bucket is not None:
            bucket = self.buckets[spec.s3_bucket]
            aws.fsx.DataRepositoryAssociation(
                name,
                file_system_id=fs.id,
                data_repository_path=bucket.name.apply(lambda b: f"s3://{b}"),
                file_system_path=spec.mount_path,
                batch_import_meta_data_on_create=True,
                s3={
                    "auto_import_policy": {"events": ["NEW", "CHANGED", "DELETED"]},
                    "auto_export_policy": {"events": ["NEW", "CHANGED", "DELETED"]},
                },
                tags=named(self._tags, name),
                opts=self._child,
            )
        return StoredLustre(id=fs.id, dns_name=fs.dns_name, mount_name=fs.mount_name, mount_path=spec.mount_path)
