"""Where data and checkpoints live on Google Cloud: GCS buckets encrypted with Cloud KMS, and Filestore."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from meshstack.core.storage import BucketSpec, StorageSpec
from meshstack.core.types import EXPECTED_GIB


@dataclass(frozen=True)
class StoredFilestore:
    name: pulumi.Output[str]
    ip: pulumi.Output[str]
    share: str
    capacity_gib: int


@dataclass(frozen=True, kw_only=True)
class StorageArgs:
    """Buckets in `region`; Filestore instances in `zone`, on the VPC `network_id`."""

    storage: StorageSpec
    """The stack's buckets and Filestore instances (its `storage` spec section)."""
    project: str
    """The Google Cloud project they are created in."""
    region: str
    """Where the buckets and their Cloud KMS key ring go."""
    zone: str
    """Where Filestore instances go (the stack's zone, beside its pools)."""
    network_id: pulumi.Input[str]
    """The VPC Filestore instances are reachable on."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Labels every resource gets (the stack's tags as labels)."""


class Storage(pulumi.ComponentResource):
    """Buckets allow no public access and no per-object ACLs, keep versions for a while and are
    encrypted with the stack's key; Filestore sits on the stack's VPC."""

    buckets: dict[str, pulumi.Output[str]]
    filestore: dict[str, StoredFilestore]

    def __init__(
        self,
        name: str,
        args: StorageArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        spec, project, region, zone, labels = args.storage, args.project, args.region, args.zone, args.labels
        # GCS grows with what is stored: the expected sizes travel as this component's inputs, for the estimate.
        expected = {f"{name}-{b.name}": b.size_gib for b in spec.buckets if b.size_gib}
        super().__init__("meshstack:gcp:Storage", name, {EXPECTED_GIB: expected}, opts)
        network_id = args.network_id
        self._child = pulumi.ResourceOptions(parent=self)
        self._name, self._labels, self._project, self._region = name, dict(labels), project, region
        ring = gcp.kms.KeyRing(f"{name}-ring", project=project, location=region, opts=self._child)
        self.key = gcp.kms.CryptoKey(
            f"{name}-key",
            key_ring=ring.id,
            rotation_period="7776000s",
            purpose="ENCRYPT_DECRYPT",
            labels=dict(labels),
            opts=self._child,
        )
        agent = gcp.storage.get_project_service_account_output(
            project=project, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        grant = gcp.kms.CryptoKeyIAMMember(
            f"{name}-gcs-agent",
            crypto_key_id=self.key.id,
            role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
            member=agent.email_address.apply(lambda email: f"serviceAccount:{email}"),
            opts=self._child,
        )
        self.buckets = {b.name: self._bucket(b, grant) for b in spec.buckets}
        self.filestore = {}
        for fs in spec.filestore:
            instance = gcp.filestore.Instance(
                f"{name}-{fs.name}",
                project=project,
                location=zone,
                tier=fs.tier,
                file_shares={"name": "share", "capacity_gb": fs.capacity_gib},
                networks=[{"network": network_id, "modes": ["MODE_IPV4"]}],
                labels=dict(self._labels),
                opts=self._child,
            )
            self.filestore[fs.name] = StoredFilestore(
                instance.name, instance.networks.apply(lambda n: n[0]["ip_addresses"][0]), "share", fs.capacity_gib
            )
        self.register_outputs({"buckets": self.buckets})

    def _bucket(self, spec: BucketSpec, after: pulumi.Resource) -> pulumi.Output[str]:
        labels = dict(self._labels)
        rules: list[dict[str, object]] = [
            {
                "action": {"type": "AbortIncompleteMultipartUpload"},
                "condition": {"age": spec.abort_incomplete_upload_days},
            },
        ]
        if spec.versioning:
            rules.append(
                {
                    "action": {"type": "Delete"},
                    "condition": {
                        "days_since_noncurrent_time": spec.noncurrent_expiration_days,
                        "with_state": "ARCHIVED",
                    },
                }
            )
        bucket = gcp.storage.Bucket(
            f"{self._name}-{spec.name}",
            project=self._project,
            location=self._region.upper(),
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            versioning={"enabled": spec.versioning},
            lifecycle_rules=rules,
            encryption={"default_kms_key_name": self.key.id},
            force_destroy=False,
            labels=labels,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[after]),
        )
        return bucket.name
