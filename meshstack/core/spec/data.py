"""Where a workload's data lives: a prefix of one of the stack's buckets, or a file system mounted into
its pods."""

from __future__ import annotations

from pydantic import Field, model_validator

from meshstack.core.spec.base import SpecModel, field_error


class StorageRef(SpecModel):
    """A prefix in one of the stack's buckets; the workload's role may read and write only there."""

    bucket: str = Field(description="One of the stack's storage.buckets[].name.")
    prefix: str = Field(
        default="", pattern=r"^[A-Za-z0-9/_.-]*$", description="The folder inside it; empty for the whole bucket."
    )


class Mount(SpecModel):
    """A file system of the stack, mounted into every pod at `path`."""

    lustre: str | None = Field(default=None, description="A storage.lustre[].name (AWS); one of the three.")
    efs: str | None = Field(default=None, description="A storage.efs[].name (AWS); one of the three.")
    filestore: str | None = Field(
        default=None, description="A storage.filestore[].name (Google Cloud); one of the three."
    )
    path: str = Field(pattern=r"^/[A-Za-z0-9/_.-]*$", description="Where the file system appears in the pods.")

    @model_validator(mode="after")
    def _one(self) -> Mount:
        if sum(x is not None for x in (self.lustre, self.efs, self.filestore)) != 1:
            raise field_error("lustre", "name exactly one of lustre, efs or filestore")
        return self

    @property
    def source(self) -> tuple[str, str]:
        """(kind, name) of the file system: ('lustre', 'scratch')."""
        for kind in ("lustre", "efs", "filestore"):
            if getattr(self, kind) is not None:
                return kind, str(getattr(self, kind))
        raise AssertionError("validated to name one file system")
