"""The typed stack spec: everything a stack file may say, validated before anything is declared."""

from meshstack.spec.cluster import ClusterSpec, NodePool, Taint
from meshstack.spec.network import NetworkSpec
from meshstack.spec.stack import REQUIRED_TAGS, Budget, StackSpec
from meshstack.spec.storage import BucketSpec, EfsSpec, LustreSpec, StorageSpec
from meshstack.spec.workload import InferenceWorkload, Mount, StorageRef, TrainingWorkload

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
