"""The shipped production stacks moved onto clusters their owners already run: the existing-cluster and
ordering tests preview the same two."""

from __future__ import annotations

from typing import Any

from tests.conftest import stack_config


def existing_aws() -> dict[str, Any]:
    """prod-aws on its owners' EKS cluster: the same pools (the nodes it has), queues and workloads."""
    config = stack_config("prod-aws")
    [cluster] = config["meshstack:clusters"]
    for key in ("kubernetes_version", "admin_principal_arns", "deployer_cidrs"):
        del cluster[key]
    cluster["existing"] = {"name": "ml-prod"}
    for pool in cluster["node_pools"]:
        pool.pop("root_volume_gib", None)
    config["meshstack:network"] = {"zones": config["meshstack:network"]["zones"]}
    return config


def existing_gcp() -> dict[str, Any]:
    config = stack_config("prod-gcp")
    [cluster] = config["meshstack:clusters"]
    for key in ("kubernetes_version", "public_access_cidrs", "deployer_cidrs", "maintenance"):
        cluster.pop(key, None)
    cluster["existing"] = {"name": "ml-prod", "location": "us-east5"}
    config.pop("meshstack:network", None)
    return config
