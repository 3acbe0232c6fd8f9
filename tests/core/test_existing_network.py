"""A stack in a network that already exists: the shapes a preview can check offline are checked, one line
naming the field, and the preview creates no VPC, subnet, NAT, route or endpoint, and everything else."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meshstack.core.errors import SpecError
from meshstack.core.stack_file import find_project, spec_from_config
from meshstack.preview.plan import Preview, preview_stack
from tests.conftest import stack_config

MakeProject = Callable[[str, dict[str, Any]], Path]
VPC = "vpc-0123456789abcdef0"
SUBNETS = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2", "subnet-0ccccccccccccccc4"]
NETWORK_TYPES = (
    "aws:ec2/vpc:Vpc",
    "aws:ec2/subnet:Subnet",
    "aws:ec2/natGateway:NatGateway",
    "aws:ec2/eip:Eip",
    "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/routeTable:RouteTable",
    "aws:ec2/vpcEndpoint:VpcEndpoint",
    "gcp:compute/network:Network",
    "gcp:compute/subnetwork:Subnetwork",
    "gcp:compute/router:Router",
    "gcp:compute/routerNat:RouterNat",
)


def existing_aws() -> dict[str, Any]:
    config = stack_config("prod-aws")
    zones = config["meshstack:network"]["zones"]
    config["meshstack:network"] = {"vpc_id": VPC, "subnet_ids": SUBNETS, "zones": zones}
    return config


def existing_gcp() -> dict[str, Any]:
    config = stack_config("prod-gcp")
    config["meshstack:network"] = {"network": "shared-vpc", "subnetwork": "ml-us-east5"}
    return config


def problem(config: dict[str, Any], stack: str = "prod-aws") -> tuple[str, str]:
    with pytest.raises(SpecError) as info:
        spec_from_config(stack, config)
    [found] = info.value.problems
    assert "\n" not in found[1]
    return found


def network(**changes: Any) -> dict[str, Any]:
    config = existing_aws()
    config["meshstack:network"].update(changes)
    return config


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"vpc_id": "vpc-12345"}, "network.vpc_id", "not a VPC id"),
        ({"subnet_ids": ["subnet-0aaaaaaaaaaaaaaa1", "sn-2", SUBNETS[2]]}, "network.subnet_ids[1]", "not a subnet id"),
        ({"subnet_ids": [SUBNETS[0], SUBNETS[0], SUBNETS[2]]}, "network.subnet_ids", "twice"),
        ({"subnet_ids": None}, "network.subnet_ids", "go together"),
        ({"zones": None}, "network.zones", "list each subnet's zone id"),
        ({"zones": ["use1-az1", "use1-az2"]}, "network.subnet_ids", "one per zone"),
        ({"zones": ["use1-az1", "us-east-1b", "use1-az4"]}, "network.zones[1]", "not an AWS zone id"),
        ({"vpc_cidr": "10.9.0.0/16"}, "network.vpc_cidr", "existing one is used as it is"),
        ({"nat_gateways": "per-az"}, "network.nat_gateways", "existing one is used as it is"),
        ({"network": "shared-vpc", "subnetwork": "x"}, "network.network", "not both"),
    ],
)
def test_an_existing_vpc_in_the_wrong_shape_is_refused(changes: dict[str, Any], field: str, says: str) -> None:
    path, message = problem(network(**changes))
    assert path == field and says in message, (path, message)


def test_a_pools_zone_without_a_subnet_is_refused() -> None:
    """prod-aws's capacity block sits in use1-az4: subnets in two other zones leave it none."""
    path, message = problem(network(subnet_ids=SUBNETS[:2], zones=["use1-az1", "use1-az2"]))
    assert path.endswith(".zone") and "use1-az4" in message and "network.zones" in message


def test_a_network_of_the_other_cloud_is_refused() -> None:
    config = existing_gcp()
    config["meshstack:network"] = {"vpc_id": VPC, "subnet_ids": SUBNETS[:2], "zones": ["use1-az1", "use1-az2"]}
    path, message = problem(config, "prod-gcp")
    assert path == "network.vpc_id" and "another cloud" in message
    config = existing_aws()
    config["meshstack:network"]["network"] = "shared-vpc"
    config["meshstack:network"]["subnetwork"] = "ml"
    assert problem(config)[0] == "network.network"


def test_the_subnet_count_sets_the_zones() -> None:
    spec = spec_from_config("prod-aws", existing_aws())
    assert spec.network.existing and spec.network.availability_zones == 3


def _preview(project_copy: MakeProject, stack: str, config: dict[str, Any]) -> Preview:
    return preview_stack(stack, find_project(project_copy(stack, config)))


def _network_part(typ: str, name: str, stack: str) -> bool:
    """What meshstack builds of a network: everything of its Network component but the nodes' own group."""
    nodes_group = name.startswith(f"{stack}-net-nodes") and "ecurityGroup" in typ
    return name.startswith(f"{stack}-net") and not nodes_group


@pytest.mark.parametrize(("stack", "config"), [("prod-aws", existing_aws), ("prod-gcp", existing_gcp)])
def test_a_stack_on_an_existing_network_creates_no_network_and_everything_else(
    preview: Callable[[str], Preview], project_copy: MakeProject, stack: str, config: Callable[[], dict[str, Any]]
) -> None:
    built = {(r.type, r.name) for r in preview(stack).resources if r.custom}
    existing = {(r.type, r.name) for r in _preview(project_copy, stack, config()).resources if r.custom}
    assert not {t for t, _ in existing} & set(NETWORK_TYPES), "nothing that exists is created"
    assert existing == {(t, n) for t, n in built if not _network_part(t, n, stack)}


def test_nodes_and_storage_go_in_the_named_subnets(project_copy: MakeProject) -> None:
    result = _preview(project_copy, "prod-aws", existing_aws())
    groups = {r.name: r.inputs["subnetIds"] for r in result.resources if r.type == "aws:eks/nodeGroup:NodeGroup"}
    assert groups["prod-aws-train-h100"] == [SUBNETS[2]], "the capacity block's zone (use1-az4) is subnet 3"
    assert all(set(ids) <= set(SUBNETS) for ids in groups.values())
    [cluster] = [r for r in result.resources if r.type == "aws:eks/cluster:Cluster"]
    assert cluster.inputs["vpcConfig"]["subnetIds"] == SUBNETS
    [group] = [r for r in result.resources if r.type == "aws:ec2/securityGroup:SecurityGroup" and "nodes" in r.name]
    assert group.inputs["vpcId"] == VPC
    gke = _preview(project_copy, "prod-gcp", existing_gcp())
    [gke_cluster] = [r for r in gke.resources if r.type == "gcp:container/cluster:Cluster"]
    assert gke_cluster.inputs["network"].endswith("/global/networks/shared-vpc")
    assert gke_cluster.inputs["subnetwork"].endswith("/subnetworks/ml-us-east5")
