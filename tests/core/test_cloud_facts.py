"""Where accelerators are offered, how maintenance is scheduled and what regions cost: facts from the
clouds' own tables, held as catalog data and checked by validation, the program and the estimate."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meshstack.cli import main
from meshstack.core.catalog import load_catalog
from meshstack.core.errors import SpecError
from meshstack.core.pricing import node_hourly
from meshstack.core.stack_file import find_project, spec_from_config
from meshstack.preview.plan import Preview, preview_stack
from tests.conftest import of_type, one, stack_config

Previewer = Callable[[str], Preview]
MakeProject = Callable[[str, dict[str, Any]], Path]


def problems_of(config: dict[str, Any], stack: str) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        spec_from_config(stack, config)
    return info.value.problems


def pools(config: dict[str, Any]) -> list[dict[str, Any]]:
    return config["meshstack:clusters"][0]["node_pools"]


# Zones


def test_a_tpu_pool_in_a_zone_without_its_generation_is_refused_with_the_zones_that_have_it() -> None:
    """The first prod-gcp served from v5e in us-east5-a: Cloud TPU lists no v5e anywhere in us-east5."""
    config = stack_config("prod-gcp")
    serve = pools(config)[2]
    serve.update(accelerator="tpu-v5e", zone=None)
    [(path, message)] = problems_of(config, "prod-gcp")
    assert path == "clusters[0].node_pools[2].accelerator"
    assert message.startswith("tpu-v5e is not offered in us-east5: the catalog lists it in ")
    config = stack_config("prod-gcp")
    pools(config)[2]["zone"] = "us-east5-c"
    [(path, message)] = problems_of(config, "prod-gcp")
    assert path == "clusters[0].node_pools[2].zone"
    assert message == "tpu-v6e is not offered in us-east5-c: zones that have it are us-east5-a, us-east5-b"


def test_a_gcp_pool_without_a_zone_is_checked_in_the_stacks_zone() -> None:
    config = stack_config("prod-gcp")
    config["gcp:zone"] = "us-east5-b"  # v6e is there; the v5p reservation pool is not
    [(path, message)] = problems_of(config, "prod-gcp")
    assert path == "clusters[0].node_pools[1].zone"
    assert "tpu-v5p is not offered in us-east5-b (the stack's zone)" in message
    assert message.endswith("zones that have it are us-east5-a")


def test_a_gcp_pool_zone_must_belong_to_the_region() -> None:
    config = stack_config("prod-gcp")
    pools(config)[2]["zone"] = "us-central1-b"
    [(path, message)] = problems_of(config, "prod-gcp")
    assert (path, message) == (
        "clusters[0].node_pools[2].zone",
        "'us-central1-b' is not a zone of us-east5, such as us-east5-b",
    )


def test_an_aws_type_offered_in_some_zones_needs_the_pool_pinned() -> None:
    """p4d.24xlarge runs in three of us-east-1's six zones: an unpinned pool may land in none of them."""
    config = stack_config("dev")
    pools(config)[1].update(accelerator="a100", accelerators_per_node=8, max_nodes=1)
    config["meshstack:workloads"] = []
    [(path, message)] = problems_of(config, "dev")
    assert path == "clusters[0].node_pools[1].zone"
    assert message.startswith("p4d.24xlarge is offered only in use1-az1, use1-az2, use1-az6 of us-east-1")


def test_an_aws_pool_outside_its_types_zones_is_refused() -> None:
    config = stack_config("prod-aws")
    pools(config)[1].update(instance_type="p5en.48xlarge", accelerator="h200")
    [(path, message)] = problems_of(config, "prod-aws")
    assert path == "clusters[0].node_pools[1].zone"
    assert message == "p5en.48xlarge is not offered in use1-az4: zones that have it are use1-az2"


def test_network_zones_are_checked_for_unpinned_pools() -> None:
    config = stack_config("prod-aws")
    pools(config)[1].update(instance_type="p4d.24xlarge", accelerator="a100", zone="use1-az1", efa=False)
    pools(config)[1].pop("reserved_nodes")
    pools(config)[1].update(market="on-demand", reservation_id=None)
    pools(config)[2].update(accelerator="a100", accelerators_per_node=8)  # unpinned: all three network zones
    config["meshstack:workloads"] = []
    [(path, message)] = problems_of(config, "prod-aws")
    assert path == "network.zones"
    assert message.startswith("p4d.24xlarge (pool 'serve') is not offered in use1-az4")


@pytest.mark.parametrize(
    ("edit", "path", "message"),
    [
        (
            lambda c: pools(c)[1].pop("zone"),
            "clusters[0].node_pools[1].zone",
            "a capacity-block sits in one availability zone: name its zone id",
        ),
        (
            lambda c: pools(c)[1].update(zone="use1-az3"),
            "clusters[0].node_pools[1].zone",
            "'use1-az3' is not one of network.zones (use1-az1, use1-az2, use1-az4)",
        ),
        (
            lambda c: c["meshstack:network"].update(zones=["use1-az1", "us-east-1b", "use1-az4"]),
            "network.zones[1]",
            "'us-east-1b' is not an AWS zone id such as use1-az4",
        ),
        (
            lambda c: c["meshstack:network"].update(zones=["use1-az1", "use1-az4"]),
            "network.zones",
            "has 2 zone ids but availability_zones is 3",
        ),
    ],
)
def test_aws_zone_mistakes_name_the_field(edit: Callable[[dict[str, Any]], Any], path: str, message: str) -> None:
    config = stack_config("prod-aws")
    edit(config)
    [(got_path, got)] = problems_of(config, "prod-aws")
    assert got_path == path
    assert got.startswith(message)


def test_the_capacity_block_pool_and_its_lustre_sit_in_the_blocks_zone(preview: Previewer) -> None:
    result = preview("prod-aws")
    subnets = {r.name: r for r in of_type(result, "aws:ec2/subnet:Subnet")}
    assert [subnets[f"prod-aws-net-private-{i}"].inputs["availabilityZoneId"] for i in range(3)] == [
        "use1-az1",
        "use1-az2",
        "use1-az4",
    ]
    assert all("availabilityZone" not in s.inputs for s in subnets.values())
    block_subnet = subnets["prod-aws-net-private-2"].outputs["id"]
    h100 = one(result, "aws:eks/nodeGroup:NodeGroup", "prod-aws-train-h100")
    assert h100.inputs["subnetIds"] == [block_subnet]
    serve = one(result, "aws:eks/nodeGroup:NodeGroup", "prod-aws-train-serve")
    assert len(serve.inputs["subnetIds"]) == 3
    lustre = one(result, "aws:fsx/lustreFileSystem:LustreFileSystem", "prod-aws-storage-scratch")
    assert lustre.inputs["subnetIds"] == block_subnet


def test_lustre_mounted_from_two_zones_is_refused() -> None:
    config = stack_config("prod-aws")
    chat = config["meshstack:workloads"][1]
    pools(config)[2]["zone"] = "use1-az1"
    chat["mounts"] = [{"lustre": "scratch", "path": "/datasets"}]
    [(path, message)] = problems_of(config, "prod-aws")
    assert path == "storage.lustre.scratch"
    assert "workloads[0] in use1-az4" in message and "workloads[1] in use1-az1" in message


def test_a_gke_pool_runs_in_its_own_zone(preview: Previewer) -> None:
    result = preview("prod-gcp")
    serve = one(result, "gcp:container/nodePool:NodePool", "prod-gcp-tpu-serve")
    assert serve.inputs["nodeLocations"] == ["us-east5-b"]
    v5p = one(result, "gcp:container/nodePool:NodePool", "prod-gcp-tpu-v5p-s0")
    assert v5p.inputs["nodeLocations"] == ["us-east5-a"]


def test_v5p_slices_beyond_512_chips_are_offered() -> None:
    catalog = load_catalog(cloud="gcp")
    shape = catalog.tpus["tpu-v5p"].topologies["16x16x24"]
    assert (shape.chips, shape.hosts) == (6144, 1536)
    config = stack_config("prod-gcp")
    pools(config)[1].update(topology="8x8x16", slices=1, max_nodes=256)
    config["meshstack:workloads"] = []
    config["meshstack:budget"] = {}
    spec = spec_from_config("prod-gcp", config)
    assert spec.clusters[0].node_pools[1].capacity_nodes == 256


# Maintenance


def test_gke_upgrades_only_in_the_window_and_never_in_an_exclusion(project_copy: MakeProject) -> None:
    config = stack_config("prod-gcp")
    config["meshstack:clusters"][0]["maintenance"] = {
        "days": ["TU", "WE"],
        "start_utc": "03:30",
        "hours": 8,
        "exclusions": [{"name": "pretrain-run", "start": "2026-12-01T00:00:00+01:00", "end": "2027-02-01T00:00:00Z"}],
    }
    root = project_copy("prod-gcp", config)
    cluster = one(preview_stack("prod-gcp", find_project(root)), "gcp:container/cluster:Cluster", "prod-gcp-tpu")
    policy = cluster.inputs["maintenancePolicy"]
    assert policy["recurringWindow"] == {
        "startTime": "2025-01-07T03:30:00Z",
        "endTime": "2025-01-07T11:30:00Z",
        "recurrence": "FREQ=WEEKLY;BYDAY=TU,WE",
    }
    assert policy["maintenanceExclusions"] == [
        {
            "exclusionName": "pretrain-run",
            "startTime": "2026-11-30T23:00:00Z",
            "endTime": "2027-02-01T00:00:00Z",
            "exclusionOptions": {"scope": "NO_MINOR_OR_NODE_UPGRADES"},
        }
    ]


def test_gke_clusters_get_a_weekend_window_by_default(preview: Previewer) -> None:
    cluster = one(preview("prod-gcp"), "gcp:container/cluster:Cluster", "prod-gcp-tpu")
    assert cluster.inputs["maintenancePolicy"]["recurringWindow"]["recurrence"] == "FREQ=WEEKLY;BYDAY=SA,SU"


@pytest.mark.parametrize(
    ("maintenance", "path", "message"),
    [
        ({"days": ["SA"], "hours": 4}, "clusters[0].maintenance.hours", "1 day(s) of 4 h give 18 h in 32 days"),
        ({"hours": 3}, "clusters[0].maintenance.hours", "Input should be greater than or equal to 4"),
        (
            {"exclusions": [{"name": "run", "start": "2027-01-02T00:00:00Z", "end": "2027-01-01T00:00:00Z"}]},
            "clusters[0].maintenance.exclusions[0].end",
            "2027-01-01T00:00:00Z is not after start",
        ),
        (
            {"exclusions": [{"name": "run", "start": "2027-01-01T00:00:00", "end": "2027-01-02T00:00:00Z"}]},
            "clusters[0].maintenance.exclusions[0].start",
            "give the offset",
        ),
    ],
)
def test_maintenance_mistakes_name_the_field(maintenance: dict[str, Any], path: str, message: str) -> None:
    config = stack_config("prod-gcp")
    config["meshstack:clusters"][0]["maintenance"] = maintenance
    [(got_path, got)] = problems_of(config, "prod-gcp")
    assert got_path == path
    assert got.startswith(message)


def test_eks_refuses_a_maintenance_window_it_would_never_use() -> None:
    config = stack_config("dev")
    config["meshstack:clusters"][0]["maintenance"] = {"days": ["SU"], "hours": 12}
    [(path, message)] = problems_of(config, "dev")
    assert path == "clusters[0].maintenance"
    assert message.startswith("AWS does not upgrade a cluster's nodes on its own")


# Prices


def test_a_region_with_its_own_prices_is_priced_at_them(preview: Previewer) -> None:
    cost = preview("prod-gcp").cost
    assert cost.region == "us-east5"
    serve = next(i for i in cost.items if i.name == "prod-gcp-tpu-serve")
    assert serve.hourly_usd == pytest.approx(1 * 2.70 + 200 * 0.10 / 730)
    assert "tpu-v6e: the catalog has no us-east5 price" not in " ".join(cost.assumptions)
    assert "n2-standard-8: the catalog has no us-east5 price; priced at us-central1's list price" in cost.assumptions
    assert cost.price_source.startswith("skypilot-org/skypilot-catalog catalogs/v7/gcp/vms.csv @ 017e2502")


def test_a_region_without_prices_says_so_in_the_cli_output(project_copy: MakeProject, capsys: Any) -> None:
    config = json.loads(json.dumps(stack_config("dev")).replace("us-east-1", "ap-east-1"))
    root = project_copy("dev", config)
    assert main(["--project", str(root), "preview", "--stack", "dev"]) == 0
    assert "(us-east-1 list prices: the catalog has no ap-east-1 prices, 2025-10-01)" in capsys.readouterr().out
    assert main(["--project", str(root), "preview", "--stack", "dev", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cost"]["region"] == "ap-east-1"
    assert (
        "g6.xlarge: the catalog has no ap-east-1 price; priced at us-east-1's list price"
        in report["cost"]["assumptions"]
    )


def test_regional_prices_in_an_override_replace_the_base_rate(tmp_path: Path) -> None:
    override = tmp_path / "eu.yaml"
    override.write_text(
        "regional_prices:\n  ap-east-1:\n    source: our price list\n    instance_types: {p5.48xlarge: 62.5}\n"
    )
    catalog = load_catalog((override,))
    assert node_hourly(catalog, "p5.48xlarge", "on-demand", "ap-east-1") == (62.5, [])
    hourly, [note] = node_hourly(catalog, "p4d.24xlarge", "on-demand", "ap-east-1")
    assert hourly == 21.96
    assert note == "p4d.24xlarge: the catalog has no ap-east-1 price; priced at us-east-1's list price"


def test_spot_follows_the_price_snapshot_else_the_type_and_tpu_generations_discount() -> None:
    """Spot where the snapshot records the region: the median of its zones (p5.48xlarge in us-east-1: 30.326,
    27.6948, 20.9934, 29.3511, 25.8774 and 25.3026); elsewhere on-demand less the type's typical discount."""
    aws, gcp = load_catalog(cloud="aws"), load_catalog(cloud="gcp")
    assert node_hourly(aws, "p5.48xlarge", "spot")[0] == pytest.approx((25.8774 + 27.6948) / 2, abs=1e-3)
    assert node_hourly(aws, "p5.48xlarge", "spot", "ap-east-1")[0] == pytest.approx(55.04 * 0.5)
    assert node_hourly(aws, "g6.xlarge", "spot", "ap-east-1")[0] == pytest.approx(0.8048 * 0.35)
    assert node_hourly(gcp, "ct6e-standard-4t", "spot")[0] == pytest.approx(4 * 0.6483)
    assert node_hourly(gcp, "ct6e-standard-4t", "spot", "us-west4")[0] == pytest.approx(4 * 2.70 * 0.24)
    assert node_hourly(gcp, "ct5p-hightpu-4t", "spot")[0] == pytest.approx(4 * 1.68)


def test_cloud_nat_is_charged_per_vm_with_a_cap(preview: Previewer) -> None:
    """prod-gcp declares 1 system node and 1 v6e host (2 VMs), up to 3 + 32 + 4 at full size (over the cap)."""
    nat = next(i for i in preview("prod-gcp").cost.items if i.type == "gcp:compute/routerNat:RouterNat")
    assert nat.hourly_usd == pytest.approx(2 * 0.0014 + 0.005)
    assert nat.peak_hourly_usd == pytest.approx(0.044 + 0.005)


def test_filestore_is_priced_by_tier(project_copy: MakeProject) -> None:
    config = stack_config("prod-gcp")
    config["meshstack:storage"]["filestore"] = [{"name": "home", "capacity_gib": 2560, "tier": "BASIC_SSD"}]
    root = project_copy("prod-gcp", config)
    cost = preview_stack("prod-gcp", find_project(root)).cost
    share = next(i for i in cost.items if i.type == "gcp:filestore/instance:Instance")
    assert share.hourly_usd == pytest.approx(2560 * 0.30 / 730)
