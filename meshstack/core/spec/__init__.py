"""The typed stack spec: everything a stack file may say, validated before anything is declared."""

from meshstack.core.network import NetworkSpec
from meshstack.core.spec.cluster import ClusterSpec
from meshstack.core.spec.data import Mount, StorageRef
from meshstack.core.spec.pool import NodePool, Taint
from meshstack.core.spec.stack import REQUIRED_TAGS, Budget, StackSpec
from meshstack.core.spec.workload import InferenceWorkload, TrainingWorkload
from meshstack.core.storage import BucketSpec, EfsSpec, LustreSpec, StorageSpec

__all__ = [
    "REQUIRED_TAGS",
    "BucketSpec",
    "Budget",
    "ClusterSpec",
    "EfsSpec",
    "InferenceWorkload",
    "LustreSpec",
    "Mount",
    "NetworkSpec",
    "NodePool",
    "StackSpec",
    "StorageRef",
    "StorageSpec",
    "Taint",
    "TrainingWorkload",
]
