"""Object storage, the parallel file system and shared NFS, with the limits each service has."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from meshstack.core.validation import DNS_LABEL, SpecModel, check_unique, field_error

# FSx for Lustre: MB/s per TiB that each deployment type offers (SCRATCH_2 has a fixed rate).
LUSTRE_THROUGHPUT: dict[str, tuple[int, ...]] = {"PERSISTENT_2": (125, 250, 500, 1000), "SCRATCH_2": ()}
EFS_MAX_PROVISIONED_MIBPS = 3414


class BucketSpec(SpecModel):
    name: str = Field(pattern=DNS_LABEL, description="Logical name; the bucket is named <stack>-<name>-<suffix>.")
    versioning: bool = Field(
        default=True, description="Keep old object versions (S3 versioning, GCS object versioning) until expired."
    )
    noncurrent_expiration_days: int = Field(default=30, ge=1, description="Old object versions are deleted after this.")
    abort_incomplete_upload_days: int = Field(
        default=7, ge=1, description="Unfinished multipart uploads are deleted after this many days."
    )
    size_gib: float = Field(default=0, ge=0, description="Expected stored size, for the cost estimate.")


class LustreSpec(SpecModel):
    """AWS FSx for Lustre: a parallel file system in one subnet, mounted by name (`mounts: [{lustre: NAME}]`)."""

    name: str = Field(pattern=DNS_LABEL, description="How workloads' mounts name it; unique among file systems.")
    capacity_gib: int = Field(ge=1200, description="1200, or a multiple of 2400.")
    deployment_type: Literal["PERSISTENT_2", "SCRATCH_2"] = Field(
        default="PERSISTENT_2",
        description="PERSISTENT_2: replicated, throughput chosen per TiB, linkable to S3; SCRATCH_2: unreplicated, "
        "fixed throughput.",
    )
    throughput_per_tib: int | None = Field(
        default=None, description="MB/s per TiB: 125, 250, 500 or 1000 on PERSISTENT_2; none on SCRATCH_2."
    )
    s3_bucket: str | None = Field(
        default=None, description="A bucket of this stack to link through a data repository association."
    )
    mount_path: str = Field(
        default="/data",
        pattern=r"^/[A-Za-z0-9/_-]*$",
        description="Where the linked bucket appears in the file system.",
    )

    @model_validator(mode="after")
    def _check(self) -> LustreSpec:
        if self.capacity_gib != 1200 and self.capacity_gib % 2400 != 0:
            raise field_error("capacity_gib", f"{self.capacity_gib} GiB is not offered: use 1200 or a multiple of 2400")
        offered = LUSTRE_THROUGHPUT[self.deployment_type]
        if offered and self.throughput_per_tib not in offered:
            raise field_error(
                "throughput_per_tib",
                f"{self.deployment_type} offers {', '.join(map(str, offered))} MB/s per TiB, "
                f"not {self.throughput_per_tib}",
            )
        if not offered and self.throughput_per_tib is not None:
            raise field_error("throughput_per_tib", f"{self.deployment_type} has a fixed throughput: leave this out")
        if self.s3_bucket is not None and self.deployment_type != "PERSISTENT_2":
            raise field_error("s3_bucket", "linking to S3 (a data repository association) needs PERSISTENT_2")
        return self


class EfsSpec(SpecModel):
    """AWS EFS: shared NFS with a mount target in each private subnet, mounted by name (`mounts: [{efs: NAME}]`)."""

    name: str = Field(pattern=DNS_LABEL, description="How workloads' mounts name it; unique among file systems.")
    throughput_mode: Literal["elastic", "bursting", "provisioned"] = Field(
        default="elastic", description="EFS throughput mode; provisioned takes provisioned_mibps."
    )
    provisioned_mibps: float | None = Field(
        default=None, description=f"Only with throughput_mode provisioned: 1 to {EFS_MAX_PROVISIONED_MIBPS} MiB/s."
    )
    performance_mode: Literal["generalPurpose", "maxIO"] = Field(
        default="generalPurpose", description="EFS performance mode; maxIO cannot be used with elastic throughput."
    )
    size_gib: float = Field(default=0, ge=0, description="Expected stored size, for the cost estimate.")

    @model_validator(mode="after")
    def _check(self) -> EfsSpec:
        if self.throughput_mode == "provisioned":
            if self.provisioned_mibps is None or not 1 <= self.provisioned_mibps <= EFS_MAX_PROVISIONED_MIBPS:
                raise field_error(
                    "provisioned_mibps", f"provisioned throughput must be 1 to {EFS_MAX_PROVISIONED_MIBPS} MiB/s"
                )
        elif self.provisioned_mibps is not None:
            raise field_error(
                "provisioned_mibps", f"only throughput_mode provisioned takes this; mode is '{self.throughput_mode}'"
            )
        if self.performance_mode == "maxIO" and self.throughput_mode == "elastic":
            raise field_error("performance_mode", "maxIO cannot be used with elastic throughput")
        return self


class FilestoreSpec(SpecModel):
    """Google Cloud Filestore: shared NFS for a GKE cluster, in the stack's zone."""

    name: str = Field(
        pattern=DNS_LABEL, description="How workloads' mounts name it (`mounts: [{filestore: NAME}]`); unique."
    )
    tier: Literal["BASIC_HDD", "BASIC_SSD", "ZONAL"] = Field(default="BASIC_HDD", description="Filestore service tier.")
    capacity_gib: int = Field(ge=1024, description="BASIC_HDD from 1024, BASIC_SSD from 2560, ZONAL from 1024 GiB.")

    @model_validator(mode="after")
    def _check(self) -> FilestoreSpec:
        if self.tier == "BASIC_SSD" and self.capacity_gib < 2560:
            raise field_error("capacity_gib", "BASIC_SSD instances start at 2560 GiB")
        return self


class StorageSpec(SpecModel):
    """The stack's storage; each kind is offered on the clouds its description names, refused on the others."""

    buckets: list[BucketSpec] = Field(
        default_factory=list, description="Object storage buckets (S3 on AWS, GCS on Google Cloud), encrypted."
    )
    lustre: list[LustreSpec] = Field(default_factory=list, description="AWS: FSx for Lustre.")
    efs: list[EfsSpec] = Field(default_factory=list, description="AWS: EFS.")
    filestore: list[FilestoreSpec] = Field(default_factory=list, description="Google Cloud: Filestore.")

    @model_validator(mode="after")
    def _check_names(self) -> StorageSpec:
        check_unique(
            (
                (f"{kind}[{i}].name", item.name)
                for kind in ("buckets", "lustre", "efs", "filestore")
                for i, item in enumerate(getattr(self, kind))
            ),
            "storage",
        )
        buckets = [b.name for b in self.buckets]
        for i, fs in enumerate(self.lustre):
            if fs.s3_bucket is not None and fs.s3_bucket not in buckets:
                raise field_error(
                    f"lustre[{i}].s3_bucket",
                    f"'{fs.s3_bucket}' is not a bucket of this stack: declared are {', '.join(buckets) or 'none'}",
                )
        return self
