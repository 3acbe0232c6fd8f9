"""Kubernetes versions: the table of what meshstack pins per version and how long each cloud supports it
(meshstack/core/kubernetes_versions.yaml, dates from the clouds' release calendars as data), validation
against it as of a day, EKS's support policy as a spec choice, and its price."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meshstack.core import clouds
from meshstack.core.errors import SpecError
from meshstack.core.kubernetes import (
    AUTOSCALER_IMAGES,
    SUPPORTED_VERSIONS,
    TODAY_ENV,
    default_version,
    in_standard_support,
    support_table,
)
from meshstack.core.stack_file import find_project, spec_from_config
from meshstack.preview.plan import preview_stack
from tests.conftest import SHIPPED_STACKS, of_type, stack_config

MakeProject = Callable[[str, dict[str, Any]], Path]
REVIEW_DAY = datetime.date(2026, 12, 7)


@pytest.fixture
def on_review_day(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TODAY_ENV, REVIEW_DAY.isoformat())


def problems(stack: str, config: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        spec_from_config(stack, config)
    return info.value.problems


def with_version(stack: str, version: str, support_type: str | None = None) -> dict[str, Any]:
    config = stack_config(stack)
    cluster = config["meshstack:clusters"][0]
    cluster["kubernetes_version"] = version
    if support_type is not None:
        cluster["support_type"] = support_type
    return config


def test_the_table_pins_an_autoscaler_of_the_same_minor_and_orders_its_dates() -> None:
    assert "1.35" in SUPPORTED_VERSIONS and AUTOSCALER_IMAGES["1.35"].startswith("v1.35.")
    for version, autoscaler in AUTOSCALER_IMAGES.items():
        assert autoscaler.startswith(f"v{version}."), version
        for cloud in ("aws", "gcp"):
            support = support_table(cloud)[version]
            assert support.released < support.end_of_standard, (version, cloud)
            if support.end_of_extended is not None:
                assert support.end_of_standard < support.end_of_extended, (version, cloud)
        # EKS: 14 months of standard support, then 12 of extended (the EKS version lifecycle page).
        eks = support_table("aws")[version]
        assert eks.end_of_extended is not None
        assert 13 * 30 < (eks.end_of_standard - eks.released).days < 15 * 31
        assert 360 <= (eks.end_of_extended - eks.end_of_standard).days <= 366
        assert support_table("gcp")[version].end_of_extended is None


def test_a_cloud_must_date_every_version_meshstack_knows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dates = tmp_path / "kubernetes_support.yaml"
    dates.write_text(
        "".join(f'"{v}": {{released: 2026-01-28, end_of_standard: 2027-03-27}}\n' for v in ("1.35", "1.99"))
    )
    aws = dataclasses.replace(clouds.get("aws"), kubernetes_support=dates)
    monkeypatch.setattr(clouds, "get", lambda name: aws)
    support_table.cache_clear()
    try:
        with pytest.raises(
            clouds.CloudError, match=r"date every Kubernetes version .* missing 1\.31, .*; unknown 1\.99"
        ):
            support_table("aws")
    finally:
        monkeypatch.undo()
        support_table.cache_clear()


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_the_shipped_stacks_are_on_a_version_in_standard_support(stack: str, on_review_day: None) -> None:
    spec = spec_from_config(stack, stack_config(stack))
    for cluster in spec.clusters:
        assert cluster.support_type == "STANDARD"
        assert in_standard_support(spec.cloud, cluster.kubernetes_version, REVIEW_DAY), cluster.kubernetes_version


def test_a_version_past_standard_support_is_refused_with_standard_support_on_eks(on_review_day: None) -> None:
    """1.33 and 1.34 were the shipped stacks' and the newest accepted versions: on 2026-12-07 EKS ended
    their standard support (2026-07-29, 2026-12-02) and, under STANDARD, upgrades them on its own."""
    for version, ended in (("1.33", "2026-07-29"), ("1.34", "2026-12-02")):
        [(path, message)] = problems("prod-aws", with_version("prod-aws", version))
        assert path == "clusters[0].kubernetes_version"
        assert f"Kubernetes {version}'s standard support on AWS ended {ended}" in message
        assert "use one of 1.35, 1.36" in message and "or set support_type EXTENDED" in message
        assert message.endswith("(as of 2026-12-07)")


def test_extended_support_keeps_a_version_until_its_extended_support_ends(on_review_day: None) -> None:
    spec = spec_from_config("prod-aws", with_version("prod-aws", "1.33", "EXTENDED"))
    assert spec.clusters[0].support_type == "EXTENDED"
    [(path, message)] = problems("prod-aws", with_version("prod-aws", "1.31", "EXTENDED"))
    assert path == "clusters[0].kubernetes_version"
    assert "Kubernetes 1.31's extended support on AWS ended 2026-11-26" in message


def test_gke_takes_standard_support_only_and_refuses_what_it_no_longer_supports(on_review_day: None) -> None:
    [(path, message)] = problems("prod-gcp", with_version("prod-gcp", "1.35", "EXTENDED"))
    assert path == "clusters[0].support_type" and "GCP offers no extended support" in message
    [(path, message)] = problems("prod-gcp", with_version("prod-gcp", "1.34"))
    assert path == "clusters[0].kubernetes_version"
    assert "Kubernetes 1.34's standard support on GCP ended 2026-10-01" in message and "EXTENDED" not in message


def test_a_version_is_judged_on_the_day_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same stack file is valid before the end of its version's standard support and not after."""
    config = with_version("prod-aws", "1.35")
    monkeypatch.setenv(TODAY_ENV, "2027-03-26")
    spec_from_config("prod-aws", config)
    monkeypatch.setenv(TODAY_ENV, "2027-03-27")
    [(_, message)] = problems("prod-aws", config)
    assert "ended 2027-03-27" in message and "use one of 1.36" in message
    assert default_version("aws", REVIEW_DAY) == "1.35" and default_version("gcp", REVIEW_DAY) == "1.35"


def control_plane(project_copy: MakeProject, version: str, support_type: str) -> tuple[Any, Any, list[str]]:
    result = preview_stack("dev", find_project(project_copy("dev", with_version("dev", version, support_type))))
    [cluster] = of_type(result, "aws:eks/cluster:Cluster")
    item = next(i for i in result.cost.items if i.name == cluster.name)
    return cluster, item, result.cost.assumptions


def test_extended_support_is_asked_of_eks_and_priced(project_copy: MakeProject, on_review_day: None) -> None:
    """EKS bills $0.60 per cluster-hour (the catalog's eks_extended_support_per_hour) once a version is past
    standard support; a cluster set to EXTENDED on a version still in standard support pays the standard rate."""
    cluster, item, _ = control_plane(project_copy, "1.33", "EXTENDED")
    assert cluster.inputs["upgradePolicy"] == {"supportType": "EXTENDED"}
    assert item.hourly_usd == pytest.approx(0.60) and "extended support" in item.description
    cluster, item, assumptions = control_plane(project_copy, "1.35", "EXTENDED")
    assert item.hourly_usd == pytest.approx(0.10)
    assert any("1.35" in a and "2027-03-27" in a and "0.60" in a for a in assumptions), assumptions
    cluster, item, assumptions = control_plane(project_copy, "1.35", "STANDARD")
    assert cluster.inputs["upgradePolicy"] == {"supportType": "STANDARD"} and item.hourly_usd == pytest.approx(0.10)
    assert any("2027-03-27" in a and "upgrades the control plane" in a for a in assumptions), assumptions
