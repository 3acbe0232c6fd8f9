"""Every validation rule rejects its bad case and names the field to change."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from meshstack.core.errors import SpecError
from meshstack.core.spec import StackSpec
from meshstack.core.stack_file import load_stack, spec_from_config
from tests.conftest import SHIPPED_STACKS, stack_config
from tests.support.specs import pools, problems_of


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_shipped_stacks_validate(stack: str) -> None:
    spec = load_stack(stack)
    assert spec.name == stack
    assert all(pool.instance_type for cluster in spec.clusters for pool in cluster.node_pools)


def test_catalog_picks_the_instance_type_for_the_accelerator() -> None:
    spec = load_stack("prod-aws")
    h100 = spec.clusters[0].node_pools[1]
    assert (h100.instance_type, h100.accelerators_per_node) == ("p5.48xlarge", 8)
    dev_gpu = load_stack("dev").clusters[0].node_pools[1]
    assert dev_gpu.instance_type == "g6.xlarge"


def test_unknown_accelerator_names_field_and_allowed_values() -> None:
    config = stack_config("dev")
    pools(config)[1]["accelerator"] = "h900"
    [(path, message)] = problems_of(config)
    assert path == "clusters[0].node_pools[1].accelerator"
    assert "unknown accelerator 'h900'" in message
    assert "h100" in message and "trainium2" in message


def test_efa_on_instance_type_without_efa() -> None:
    config = stack_config("dev")
    pools(config)[1]["efa"] = True
    [(path, message)] = problems_of(config)
    assert path == "clusters[0].node_pools[1].efa"
    assert "g6.xlarge has no EFA support" in message


def test_overlapping_subnet_cidrs() -> None:
    config = stack_config("dev")
    config["meshstack:network"].update(
        private_subnet_cidrs=["10.20.0.0/18", "10.20.64.0/18"], public_subnet_cidrs=["10.20.128.0/24", "10.20.0.0/24"]
    )
    [(path, message)] = problems_of(config)
    assert path == "network.public_subnet_cidrs[1]"
    assert "overlaps private_subnet_cidrs[0] '10.20.0.0/18'" in message


def test_subnet_outside_vpc() -> None:
    config = stack_config("dev")
    config["meshstack:network"].update(private_subnet_cidrs=["10.20.0.0/18", "10.99.0.0/18"])
    [(path, message)] = problems_of(config)
    assert path == "network.private_subnet_cidrs[1]"
    assert "not inside vpc_cidr 10.20.0.0/16" in message


def test_cidr_with_host_bits_is_rejected() -> None:
    config = stack_config("dev")
    config["meshstack:network"]["vpc_cidr"] = "10.20.0.1/16"
    [(path, message)] = problems_of(config)
    assert path == "network.vpc_cidr"
    assert "not an IPv4 CIDR block" in message


def test_min_greater_than_max() -> None:
    config = stack_config("dev")
    pools(config)[1].update(min_nodes=3, max_nodes=2)
    [(path, message)] = problems_of(config)
    assert path == "clusters[0].node_pools[1].min_nodes"
    assert "min_nodes 3 is greater than max_nodes 2" in message


def test_desired_exceeds_max() -> None:
    config = stack_config("dev")
    pools(config)[1].update(desired_nodes=5)
    [(path, message)] = problems_of(config)
    assert path == "clusters[0].node_pools[1].desired_nodes"
    assert "exceeds max_nodes 2" in message


def test_capacity_block_without_id() -> None:
    config = stack_config("prod-aws")
    del pools(config)[1]["reservation_id"]
    [(path, message)] = problems_of(config, "prod-aws")
    assert path == "clusters[0].node_pools[1].reservation_id"
    assert "capacity-block" in message and "needs the reservation id" in message


def test_reservation_id_on_spot_pool() -> None:
    config = stack_config("dev")
    pools(config)[1]["reservation_id"] = "cr-0a1b2c3d4e5f60718"
    [(path, _)] = problems_of(config)
    assert path == "clusters[0].node_pools[1].reservation_id"


def test_accelerator_count_no_instance_type_offers() -> None:
    config = stack_config("dev")
    pools(config)[1]["accelerators_per_node"] = 3
    [(path, message)] = problems_of(config)
    assert path == "clusters[0].node_pools[1].accelerators_per_node"
    assert "allowed are 1, 4, 8" in message


def test_instance_type_of_another_accelerator() -> None:
    config = stack_config("dev")
    pools(config)[1]["instance_type"] = "p5.48xlarge"
    [(path, message)] = problems_of(config)
    assert path == "clusters[0].node_pools[1].instance_type"
    assert "carries h100, not l4" in message


@pytest.mark.parametrize(
    ("lustre", "field", "text"),
    [
        ({"throughput_per_tib": 200}, "throughput_per_tib", "offers 125, 250, 500, 1000 MB/s per TiB, not 200"),
        ({"capacity_gib": 3000}, "capacity_gib", "3000 GiB is not offered"),
        ({"deployment_type": "SCRATCH_2"}, "throughput_per_tib", "fixed throughput"),
        ({"s3_bucket": "missing"}, "s3_bucket", "'missing' is not a bucket of this stack"),
    ],
)
def test_lustre_offers_only_what_fsx_has(lustre: dict[str, Any], field: str, text: str) -> None:
    config = stack_config("prod-aws")
    config["meshstack:storage"]["lustre"][0].update(lustre)
    [(path, message)] = problems_of(config, "prod-aws")
    assert path == f"storage.lustre[0].{field}"
    assert text in message


def test_efs_provisioned_throughput_out_of_range() -> None:
    config = stack_config("dev")
    config["meshstack:storage"]["efs"] = [{"name": "home", "throughput_mode": "provisioned", "provisioned_mibps": 5000}]
    [(path, message)] = problems_of(config)
    assert path == "storage.efs[0].provisioned_mibps"
    assert "1 to 3414 MiB/s" in message


def test_missing_required_tag() -> None:
    config = stack_config("dev")
    del config["meshstack:tags"]["cost-center"]
    [(path, message)] = problems_of(config)
    assert path == "tags.cost-center"
    assert "required" in message


def test_unknown_key_lists_the_allowed_ones() -> None:
    config = stack_config("dev")
    pools(config)[1]["max_node"] = 3
    [(path, message)] = problems_of(config)
    assert path == "clusters[0].node_pools[1].max_node"
    assert "unknown key" in message and "max_nodes" in message


def test_strict_types_do_not_coerce() -> None:
    config = stack_config("dev")
    pools(config)[1]["max_nodes"] = "2"
    [(path, message)] = problems_of(config)
    assert path == "clusters[0].node_pools[1].max_nodes"
    assert "integer" in message


def test_missing_region_names_the_provider_key() -> None:
    config = stack_config("dev")
    del config["aws:region"]
    [(path, message)] = problems_of(config)
    assert (path, message) == ("aws:region", "is required")


def test_duplicate_pool_names() -> None:
    config = stack_config("dev")
    pools(config)[1]["name"] = "system"
    [(path, _)] = problems_of(config)
    assert path == "clusters[0].node_pools[1].name"


def test_unknown_meshstack_key_is_rejected_and_other_namespaces_ignored() -> None:
    config = stack_config("dev")
    config["aws:profile"] = "someone"
    config["meshstack:budgets"] = {}
    [(path, message)] = problems_of(config)
    assert path == "meshstack:budgets"
    assert "meshstack:budget," in message and "meshstack:region" not in message


def test_all_problems_are_reported_on_one_line() -> None:
    config = stack_config("dev")
    pools(config)[1]["accelerator"] = "h900"
    pools(config)[0]["min_nodes"] = 9
    with pytest.raises(SpecError) as info:
        spec_from_config("dev", config, "Pulumi.dev.yaml")
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("Pulumi.dev.yaml: ")
    assert "clusters[0].node_pools[0].min_nodes" in text and "clusters[0].node_pools[1].accelerator" in text


def test_a_stack_targets_one_cloud() -> None:
    config = {**stack_config("dev"), "gcp:project": "my-project"}
    expected = r"Pulumi.dev.yaml: config: keys of more than one cloud \(aws, gcp\): a stack targets one"
    with pytest.raises(SpecError, match=expected):
        spec_from_config("dev", config, "Pulumi.dev.yaml")


def test_a_cloud_not_registered_is_refused_by_the_spec() -> None:
    data = {"name": "x", "cloud": "azure", "region": "eastus", "environment": "dev", "tags": {}, "clusters": []}
    with pytest.raises(ValidationError, match="no cloud 'azure' is registered: known are aws, gcp"):
        StackSpec.model_validate(data)
