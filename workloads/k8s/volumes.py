"""The stack's file systems as statically provisioned volumes a workload's pods can mount."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class FileSystemRef:
    """What the CSI driver needs to mount an existing file system."""

    driver: str
    handle: pulumi.Input[str]
    capacity_gib: int
    attributes: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    mount_options: tuple[str, ...] = ()


@dataclass(frozen=True)
class VolumeMount:
    """A file system mounted at `path`; `name` tells the volume apart from the workload's others."""

    name: str
    path: str
    filesystem: FileSystemRef


def claims(owner: str, namespace: str, mounts: Sequence[VolumeMount], opts: pulumi.ResourceOptions) -> dict[str, str]:
    """A PersistentVolume and a bound claim per mount; returns mount path -> claim name."""
    out = {}
    for mount in mounts:
        fs = mount.filesystem
        name = f"{owner}-{mount.name}"
        volume = k8s.core.v1.PersistentVolume(
            name,
            metadata={"name": name},
            spec={
                "capacity": {"storage": f"{fs.capacity_gib}Gi"},
                "volumeMode": "Filesystem",
                "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "mountOptions": list(fs.mount_options),
                "csi": {"driver": fs.driver, "volumeHandle": fs.handle, "volumeAttributes": dict(fs.attributes)},
            },
            opts=opts,
        )
        k8s.core.v1.PersistentVolumeClaim(
            name,
            metadata={"name": name, "namespace": namespace},
            spec={
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "volumeName": name,
                "resources": {"requests": {"storage": f"{fs.capacity_gib}Gi"}},
            },
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[volume])),
        )
        out[mount.path] = name
    return out
