"""The catalog is data a user can extend and override, and a broken override is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshstack.cli import main
from meshstack.core.catalog import CatalogError, load_catalog
from meshstack.core.errors import SpecError


def test_shipped_catalog_has_every_field_the_spec_needs() -> None:
    catalog = load_catalog(())
    p5 = catalog.instance_types["p5.48xlarge"]
    assert (p5.accelerator, p5.accelerators, p5.efa_interfaces) == ("h100", 8, 32)
    assert catalog.accelerators["h100"].bf16_tflops == 989
    assert catalog.prices.region == "us-east-1" and catalog.prices.date and catalog.prices.source
    for accelerator in ("h100", "a100", "l4", "l40s", "a10g", "trainium1", "trainium2", "cpu"):
        assert catalog.instance_types_for(accelerator), accelerator


def test_cheapest_type_comes_first() -> None:
    catalog = load_catalog(())
    prices = [catalog.instance_types[t].price_per_hour for t in catalog.instance_types_for("l4")]
    assert prices == sorted(prices)


def test_override_changes_one_price_and_adds_a_type(tmp_path: Path) -> None:
    override = tmp_path / "ours.yaml"
    override.write_text(
        "instance_types:\n"
        "  p5.48xlarge: {price_per_hour: 40.0}\n"
        "  g6.2xlarge: {accelerator: l4, accelerators: 1, vcpus: 8, memory_gib: 32, network_gbps: 10,"
        " efa_interfaces: 0, price_per_hour: 0.9776}\n"
    )
    catalog = load_catalog((override,))
    assert catalog.instance_types["p5.48xlarge"].price_per_hour == 40.0
    assert catalog.instance_types["p5.48xlarge"].efa_interfaces == 32
    assert "g6.2xlarge" in catalog.instance_types_for("l4", 1)


def test_override_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    override = tmp_path / "ours.yaml"
    override.write_text("instance_types:\n  g6.xlarge: {price_per_hour: 0.5}\n")
    monkeypatch.setenv("MESHSTACK_CATALOG", str(override))
    assert load_catalog().instance_types["g6.xlarge"].price_per_hour == 0.5


def test_override_with_unknown_accelerator_is_an_error(tmp_path: Path) -> None:
    override = tmp_path / "bad.yaml"
    override.write_text("instance_types:\n  g6.xlarge: {accelerator: h300}\n")
    with pytest.raises(CatalogError, match=r"instance_types.g6.xlarge.accelerator: 'h300'"):
        load_catalog((override,))


def test_override_with_wrong_type_names_the_key(tmp_path: Path) -> None:
    override = tmp_path / "bad.yaml"
    override.write_text("instance_types:\n  g6.xlarge: {price_per_hour: cheap}\n")
    with pytest.raises(CatalogError, match=r"instance_types.g6.xlarge.price_per_hour"):
        load_catalog((override,))


def test_unreadable_override(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"absent\.yaml: cannot be read: No such file or directory"):
        load_catalog((tmp_path / "absent.yaml",))


def test_a_cloud_without_a_catalog_is_named() -> None:
    with pytest.raises(CatalogError, match=r"no catalog for cloud 'azure' \(known: aws, gcp\)"):
        load_catalog(cloud="azure")


def test_a_broken_override_exits_3_with_one_line_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    override = tmp_path / "bad.yaml"
    override.write_text("instance_types:\n  g6.xlarge: {price_per_hour: cheap}\n")
    monkeypatch.setenv("MESHSTACK_CATALOG", str(override))
    assert main(["validate", "--stack", "dev"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("meshstack: catalog instance_types.g6.xlarge.price_per_hour:")


def test_service_prices_are_checked_by_the_clouds_pricing_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo in `services:` cannot price anything at 0 silently: the preview stops and names the key."""
    override = tmp_path / "typo.yaml"
    override.write_text("services: {eks_control_plane_per_hourr: 0.1}\n")
    monkeypatch.setenv("MESHSTACK_CATALOG", str(override))
    assert main(["preview", "--stack", "dev"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == "meshstack: catalog services.eks_control_plane_per_hourr: Extra inputs are not permitted"
